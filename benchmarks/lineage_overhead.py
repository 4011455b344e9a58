"""Benchmark: lineage overhead per task: build the OpenLineage facets of an inference task and emit them
through the outbox transport (target <= 20 ms per task).

What one task pays, measured separately and together, N times each (default 200):

- ``facets``: ``get_openlineage_facets_on_complete`` of a ``LakeFSInferenceOperator`` with two pinned
  inputs (data + model): naming, version / ``lakefs_commit`` / ``datasetType`` facets, model choice,
  hyperparameters, container, and one ``get_commit`` per input against the **real lakeFS** (commit
  time and the producing run from the model commit's provenance);
- ``emit``: ``OutboxTransport.emit`` of the resulting COMPLETE event: Marquez registration events for
  both inputs, JSON, one entry file written with fsync (file and directory) and renamed into place;
  the endpoint is down (nothing listens), so this is the cost a task pays in an outage;
- ``complete``: both, as the listener runs them for the COMPLETE event;
- ``start``: the START event (run facets only, no lakeFS call) built and emitted;
- ``task``: start + complete, what one task attempt pays in total.

Uses the ``lakefs_default`` connection if ``AIRFLOW_CONN_LAKEFS_DEFAULT`` is set, else the local
stack (``mlrepo stack up``).

    python benchmarks/lineage_overhead.py --iterations 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.lineage.ids import TaskLineageIds
from airflow_mlrepo.lineage.outbox import OutboxConfig, OutboxTransport
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.pinning import PinnedInput

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET_MS = 20.0


def _connect() -> LakeFSHook:
    if "AIRFLOW_CONN_LAKEFS_DEFAULT" not in os.environ:
        from mlrepo_devstack import stack

        stack.up(["lakefs"])
        os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = stack.read_env()["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    return LakeFSHook()


def _measure(label: str, iterations: int, action: Callable[[], object]) -> list[float]:
    action()  # warm up (imports, connection pool)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(
        f"{label:<8} median {statistics.median(times):6.2f} ms   p95 {p95:6.2f} ms   max {times[-1]:6.2f} ms",
        flush=True,
    )
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--outbox", default=None, help="outbox directory (default: a temporary one)")
    parser.add_argument("--no-fsync", action="store_true", help="measure with the transport's fsync: false")
    args = parser.parse_args(argv)

    hook = _connect()
    suffix = uuid.uuid4().hex[:8]
    data_repo, model_repo = f"bench-ol-input-{suffix}", f"bench-ol-models-{suffix}"
    training = TaskLineageIds("bench", "bench.train", str(uuid.uuid4()), str(uuid.uuid4()), "bench")
    for repo in (data_repo, model_repo):
        hook.create_repository(repo, f"local://{repo}")
    try:
        hook.upload_object(data_repo, "main", "batches/b1.csv", b"id,x\n1,2\n")
        data_commit = hook.commit(data_repo, "main", "batch")
        hook.upload_object(model_repo, "main", "model/model.pkl", b"model")
        model_commit = hook.commit(model_repo, "main", "model", training.commit_metadata())

        op = LakeFSInferenceOperator(
            task_id="predict",
            inputs={"input_data": f"lakefs://{data_repo}/main/batches/"},
            model=f"lakefs://{model_repo}/main/model/",
            output_location=f"lakefs://{model_repo}/main/predictions/",
            hyperparameters={"threshold": 0.5, "batch_size": 64},
            image="ghcr.io/airflow-mlrepo/iris:0.1.0",
            runner="local",
        )
        op.__dict__["lakefs_hook"] = LakeFSHook.from_settings(hook.settings)
        op.pinned_inputs = {
            "input_data": PinnedInput(
                "input_data",
                LakeFSLocation.parse(op.inputs["input_data"]),
                data_commit.id,
                "as_of",
                "2026-11-01T00:00:00+00:00",
            ),
            "model": PinnedInput("model", LakeFSLocation.parse(op.model), model_commit.id, "latest"),
        }
        op.output_commit_id = "f" * 64

        with tempfile.TemporaryDirectory(prefix="mlrepo-outbox-bench-") as scratch:
            outbox_dir = Path(args.outbox or scratch)
            transport = OutboxTransport(
                OutboxConfig.from_dict(
                    {
                        "outbox_dir": str(outbox_dir),
                        "http": {"url": "http://127.0.0.1:9"},
                        "deliver_in_background": False,
                        "fsync": not args.no_fsync,
                    }
                )
            )

            def event() -> RunEvent:
                lineage = op.get_openlineage_facets_on_complete(None)
                return RunEvent(
                    eventType=RunState.COMPLETE,
                    eventTime="2026-11-01T00:00:00+00:00",
                    run=Run(runId=str(uuid.uuid4()), facets=lineage.run_facets),
                    job=Job(namespace="bench", name="bench.predict"),
                    inputs=lineage.inputs,
                    outputs=lineage.outputs,
                )

            sample = event()
            print(f"lakeFS {hook.server_version()} at {hook.settings.endpoint}; outbox {outbox_dir}; "
                  f"{args.iterations} iterations; endpoint down; fsync {not args.no_fsync}")  # fmt: skip
            _measure("facets", args.iterations, lambda: op.get_openlineage_facets_on_complete(None))
            _measure("emit", args.iterations, lambda: transport.emit(sample))
            complete = _measure("complete", args.iterations, lambda: transport.emit(event()))

            def start_event() -> RunEvent:
                lineage = op.get_openlineage_facets_on_start()
                return RunEvent(
                    eventType=RunState.START,
                    eventTime="2026-11-01T00:00:00+00:00",
                    run=Run(runId=str(uuid.uuid4()), facets=lineage.run_facets),
                    job=Job(namespace="bench", name="bench.predict"),
                )

            start = _measure("start", args.iterations, lambda: transport.emit(start_event()))
            task = sorted(a + b for a, b in zip(start, complete, strict=True))
            print(f"task   median {statistics.median(task):6.2f} ms (start + complete)")
            entry = transport.emit(sample)
            print(f"events per entry: {len(entry.read_text().splitlines())} (2 registrations + the COMPLETE)")
            print(f"entry size: {entry.stat().st_size} bytes")
        median = statistics.median(task)
        verdict = "within" if median <= TARGET_MS else "OVER"
        print(f"per-task overhead median {median:.2f} ms: {verdict} the {TARGET_MS:.0f} ms target")
        return 0 if median <= TARGET_MS else 1
    finally:
        for repo in (data_repo, model_repo):
            hook.delete_repository(repo, missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
