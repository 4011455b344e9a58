"""The demo's Airflow process: parse the example DAGs once, then run ``dag.test()`` per request.

``airflow dags test DAG DATE`` parses the DAGs folder and starts Airflow's in-process execution API
each time it is called (≈20 s on a busy two-core machine); the demo runs five DAG runs, so it keeps
one process that pays that once. Each run is exactly what ``airflow dags test`` does: the DAG's
``test()`` on the demo's metadata DB; running a logical date again clears that run and runs it again.

Protocol: one JSON request per line on stdin (``{"dag_id": ..., "logical_date": ISO, "run_after":
ISO or null}``), one JSON answer per line on the original stdout (``{"dag_id", "logical_date",
"state", "run_id", "run_after", "seconds"}`` or ``{"error": ...}``). Airflow's own output goes to
stderr (the demo writes it to a log file). A request with the ``run_after`` of an earlier run gets
that run's ``run_id`` again: ``dag.test()`` replaces the run (same run id, logical date and data
interval: what a clear keeps) and runs all its tasks again.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from datetime import datetime
from typing import IO, Any


def _answer(channel: IO[str], payload: dict[str, Any]) -> None:
    channel.write(json.dumps(payload) + "\n")
    channel.flush()


def serve(dags_folder: str, requests: IO[str], answers: IO[str]) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dags_folder)
    if bag.import_errors:
        _answer(answers, {"error": f"DAG import errors in {dags_folder}: {bag.import_errors}"})
        return
    _answer(answers, {"ready": sorted(bag.dag_ids)})
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        dag_id = request["dag_id"]
        logical_date = datetime.fromisoformat(request["logical_date"])
        run_after = datetime.fromisoformat(request["run_after"]) if request.get("run_after") else None
        print(f"===== mlrepo demo: {dag_id} {logical_date.isoformat()} =====", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            dag_run = bag.dags[dag_id].test(logical_date=logical_date, run_after=run_after)
        except Exception as exc:
            traceback.print_exc()
            _answer(answers, {"dag_id": dag_id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        _answer(
            answers,
            {
                "dag_id": dag_id,
                "logical_date": logical_date.isoformat(),
                "state": str(getattr(dag_run.state, "value", dag_run.state)),
                "run_id": dag_run.run_id,
                "run_after": dag_run.run_after.isoformat(),
                "seconds": round(time.monotonic() - started, 2),
            },
        )


def main() -> None:
    # Keep the answers channel for ourselves; everything else printed goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], sys.stdin, answers)


if __name__ == "__main__":
    main()
