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

Task logs: ``dag.test()`` runs each task in this process and writes no log file, so the worker adds
a handler for the time of each task that writes the task's log records as Airflow's JSON lines to
the file the api-server reads for that attempt (``[logging] base_log_folder`` +
``log_filename_template``): the stack's Airflow UI shows the demo's task logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


def _answer(channel: IO[str], payload: dict[str, Any]) -> None:
    channel.write(json.dumps(payload) + "\n")
    channel.flush()


class TaskLogFile(logging.Handler):
    """The open log file of the running task: Airflow's structlog events (through :meth:`tee`, a
    processor put before the renderer) and plain ``logging`` records, as the JSON lines Airflow's log
    reader parses (``timestamp``, ``level``, ``event``, ``logger``)."""

    current: TaskLogFile | None = None

    def __init__(self, path: Path) -> None:
        super().__init__(level=logging.INFO)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def write(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line, default=str) + "\n")
        self._file.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(
                {
                    "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
                    "level": record.levelname.lower(),
                    "event": record.getMessage(),
                    "logger": record.name,
                }
            )
        except Exception:
            self.handleError(record)

    @staticmethod
    def tee(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """structlog processor: copy the event to the running task's file, pass it on unchanged."""
        current = TaskLogFile.current
        if current is not None:
            line = {key: value for key, value in event_dict.items() if not key.startswith("_")}
            line.setdefault("timestamp", datetime.now(timezone.utc).isoformat())
            line.setdefault("level", method_name)
            line.setdefault("logger", line.pop("logger_name", None) or getattr(logger, "name", ""))
            with contextlib.suppress(Exception):
                current.write(line)
        return event_dict

    def close(self) -> None:
        self._file.close()
        super().close()


def task_log_path(ti: Any) -> Path:
    """Where the api-server looks for the log of ``ti``'s attempt (Airflow's default file-name template)."""
    from airflow.configuration import conf

    parts = [f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}"]
    if ti.map_index is not None and ti.map_index >= 0:
        parts.append(f"map_index={ti.map_index}")
    return Path(conf.get("logging", "base_log_folder"), *parts, f"attempt={ti.try_number}.log")


def log_each_task_to_its_file() -> None:
    """Wrap ``run_task_in_process`` (what ``dag.test()`` calls per task) so each task's logs land in its file."""
    import structlog
    from airflow.sdk.execution_time import supervisor

    original: Callable[..., Any] = supervisor.run_task_in_process
    processors = structlog.get_config()["processors"]
    if TaskLogFile.tee not in processors:
        # In place, before the renderer: loggers Airflow already made share this list.
        processors.insert(max(len(processors) - 1, 0), TaskLogFile.tee)

    def run_task_in_process(ti: Any, task: Any, client: Any = None) -> Any:
        handler = TaskLogFile(task_log_path(ti))
        root = logging.getLogger()
        root.addHandler(handler)
        TaskLogFile.current = handler
        try:
            return original(ti=ti, task=task, client=client)
        finally:
            TaskLogFile.current = None
            root.removeHandler(handler)
            handler.close()

    supervisor.run_task_in_process = run_task_in_process


def serve(dags_folder: str, requests: IO[str], answers: IO[str]) -> None:
    from airflow.dag_processing.dagbag import DagBag

    log_each_task_to_its_file()

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
