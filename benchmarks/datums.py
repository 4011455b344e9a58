"""Datums: incremental vs full recompute on the real lakeFS, and the speedup of parallel mapped tasks.

    python benchmarks/datums.py [--files 10000] [--changed-percent 1] [--datums-per-task 500] [--workers 1,2,4]

Needs the local stack's lakeFS (``mlrepo stack up``). What it does, in one process on one input:

1. seeds ``--files`` one-row iris CSVs in a fresh input repository and a model;
2. a first (full) run publishes every datum on ``main`` of a predictions repository;
3. changes ``--changed-percent`` of the files (new content) and commits;
4. an **incremental** run on ``main`` (the default ``reprocess_spec=until_success``);
5. a **full recompute** of the same pinned input (``every_job``) on branch ``full-w<N>`` per worker
   count, each from the commit before step 4; its outputs must be byte-identical to step 4's
   (lakeFS diff of ``main`` and ``full-w<N>`` under ``scored/`` is empty).

The three tasks of the pipeline (:mod:`airflow_mlrepo.operators.datums`) run their ``execute`` in
this process with a stand-in task instance, no scheduler: the mapped batches run ``N`` at a time in
threads, each batch's container (``python -m mlrepo_iris.predict_datums``) a real local process.
Container-seconds are the summed wall times of those processes; lakeFS calls are the operators'
own requests (``LakeFSHook.api_calls``); the containers add about 2 per processed datum (one read,
one upload) plus one model read per task. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mlrepo_devstack import stack

from airflow_mlrepo.changes import changed_paths
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.datums import (
    LakeFSDatumBatchOperator,
    LakeFSDatumCommitOperator,
    LakeFSDatumPlanOperator,
    pfs,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_mlrepo.operators.pod import AttemptPlan

DAG_ID = "bench_datums"


class StandInTaskInstance:
    """Just what the operators read from a task instance; XComs in a dict shared by the run."""

    def __init__(self, xcoms: dict[tuple[str, str], Any], task_id: str, map_index: int = -1) -> None:
        self.dag_id = DAG_ID
        self.task_id = task_id
        self.map_index = map_index
        self.try_number = 1
        self._xcoms = xcoms

    def xcom_push(self, key: str, value: Any) -> None:
        self._xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self._xcoms.get((task_ids, key))


@dataclass
class RunStats:
    wall_seconds: float = 0.0
    container_seconds: float = 0.0
    tasks: int = 0
    lakefs_calls: int = 0
    processed: int = 0
    skipped: int = 0
    deleted: int = 0
    mode: str = ""
    phases: dict[str, float] = field(default_factory=dict)


class TimedBatchOperator(LakeFSDatumBatchOperator):
    """A batch operator that adds its container's wall time to ``seconds``."""

    seconds: list[float]

    def run_container(self, context: Any, plan: AttemptPlan) -> None:
        start = time.perf_counter()
        try:
            super().run_container(context, plan)
        finally:
            self.seconds.append(time.perf_counter() - start)


@contextmanager
def timed(stats: RunStats, phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    stats.phases[phase] = round(time.perf_counter() - start, 2)


def context(ti: StandInTaskInstance, run_id: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {"ti": ti, "run_id": run_id, "logical_date": now, "data_interval_start": now, "data_interval_end": now}


def run_pipeline(
    *, input_uri: str, model_uri: str, output_uri: str, reprocess: str, workers: int, datums_per_task: int
) -> RunStats:
    stats = RunStats()
    xcoms: dict[tuple[str, str], Any] = {}
    run_id = f"bench__{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    plan_op = LakeFSDatumPlanOperator(
        task_id="score.plan",
        input=pfs("input_data", input_uri, glob="/*"),
        model=model_uri,
        output_location=output_uri,
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        command=["python", "-m", "mlrepo_iris.predict_datums"],
        reprocess_spec=reprocess,
        datums_per_task=datums_per_task,
        pipeline="score",
    )
    with timed(stats, "plan"):
        batches = plan_op.execute(context(StandInTaskInstance(xcoms, "score.plan"), run_id))  # type: ignore[arg-type]
    xcoms[("score.plan", "return_value")] = batches
    calls = plan_op.lakefs_hook.api_calls
    seconds: list[float] = []

    def process(index: int) -> int:
        operator = TimedBatchOperator(
            task_id="score.process",
            batch=batches[index],
            output_location=output_uri,
            image="ghcr.io/airflow-mlrepo/iris:0.1.0",
            cmds=["python", "-m", "mlrepo_iris.predict_datums"],
            runner="local",
        )
        operator.seconds = seconds
        ti = StandInTaskInstance(xcoms, "score.process", map_index=index)
        operator.execute(context(ti, run_id))  # type: ignore[arg-type]
        return operator.lakefs_hook.api_calls

    with timed(stats, "process"), ThreadPoolExecutor(max_workers=workers) as pool:
        calls += sum(pool.map(process, range(len(batches))))
    commit_op = LakeFSDatumCommitOperator(
        task_id="score.commit", plan_task_id="score.plan", process_task_id="score.process"
    )
    with timed(stats, "commit"):
        result = commit_op.execute(context(StandInTaskInstance(xcoms, "score.commit"), run_id))  # type: ignore[arg-type]
    calls += commit_op.lakefs_hook.api_calls
    stats.wall_seconds = round(time.perf_counter() - started, 2)
    stats.container_seconds = round(sum(seconds), 2)
    stats.tasks = len(batches)
    stats.lakefs_calls = calls
    stats.processed, stats.skipped, stats.deleted = result["processed"], result["skipped"], result["deleted"]
    stats.mode = result["mode"]
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--datums-per-task", type=int, default=500)
    parser.add_argument("--workers", default="1,2,4", help="worker counts of the full recomputes")
    parser.add_argument("--seed-threads", type=int, default=8)
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]

    os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = stack.read_env()["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    os.environ.setdefault("AIRFLOW__MLREPO__RUNNER", "local")
    from mlrepo_iris import seed
    from mlrepo_iris.dataset import DataFile
    from mlrepo_iris.train import MODEL_FILE, fit

    hook = LakeFSHook()
    prefix = f"bd-{uuid.uuid4().hex[:6]}"
    input_repo, models_repo, out_repo = (f"{prefix}-{kind}" for kind in ("input", "models", "predictions"))
    for repo in (input_repo, models_repo, out_repo):
        hook.create_repository(repo, f"local://{repo}")
    report: dict[str, Any] = {"files": args.files, "changed_percent": args.changed_percent}
    try:
        _, model_bytes, _ = fit([DataFile("train.csv", seed.training_csv(1, 1))], {})
        hook.upload_object(models_repo, "main", f"model/{MODEL_FILE}", model_bytes)
        hook.commit(models_repo, "main", "model")

        def record(i: int, version: int = 0) -> bytes:
            return seed.inference_csv((i + version) % 150 + 1, 150).replace(b"iris-", f"r{i:05d}-".encode())

        def upload(item: tuple[int, int]) -> None:
            i, version = item
            LakeFSHook().upload_object(input_repo, "main", f"records/{i:05d}.csv", record(i, version))

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.seed_threads) as pool:
            list(pool.map(upload, ((i, 0) for i in range(args.files))))
        hook.commit(input_repo, "main", f"{args.files} records")
        report["seed_seconds"] = round(time.perf_counter() - start, 1)
        uris = {
            "input_uri": f"lakefs://{input_repo}/main/records/",
            "model_uri": f"lakefs://{models_repo}/main/model/",
        }
        first = run_pipeline(
            **uris,
            output_uri=f"lakefs://{out_repo}/main/scored/",
            reprocess="until_success",
            workers=max(workers),
            datums_per_task=args.datums_per_task,
        )
        report["first_run"] = first.__dict__
        before_change = hook.get_branch_head(out_repo, "main")
        changed = max(1, round(args.files * args.changed_percent / 100))
        step = max(1, args.files // changed)
        with ThreadPoolExecutor(max_workers=args.seed_threads) as pool:
            list(pool.map(upload, ((i, 1) for i in range(0, args.files, step)[:changed])))
        hook.commit(input_repo, "main", f"change {changed} records")
        # the full recomputes pin the same input commit: the input branch does not move again
        incremental = run_pipeline(
            **uris,
            output_uri=f"lakefs://{out_repo}/main/scored/",
            reprocess="until_success",
            workers=max(workers),
            datums_per_task=args.datums_per_task,
        )
        report["changed_datums"] = changed
        report["incremental"] = incremental.__dict__
        fulls: dict[str, Any] = {}
        for count in workers:
            branch = f"full-w{count}"
            hook.create_branch(out_repo, branch, before_change)
            full = run_pipeline(
                **uris,
                output_uri=f"lakefs://{out_repo}/{branch}/scored/",
                reprocess="every_job",
                workers=count,
                datums_per_task=args.datums_per_task,
            )
            differing = sum(1 for _ in changed_paths(hook, out_repo, "main", branch, "scored/"))
            fulls[str(count)] = {**full.__dict__, "objects_differing_from_incremental": differing}
        report["full_recompute"] = fulls
        reference = fulls[str(workers[0])]
        report["work_ratio_container_seconds"] = round(
            reference["container_seconds"] / max(incremental.container_seconds, 1e-9), 1
        )
        report["wall_ratio"] = round(reference["wall_seconds"] / max(incremental.wall_seconds, 1e-9), 1)
        report["speedup_vs_1_worker"] = (
            {w: round(fulls["1"]["wall_seconds"] / fulls[w]["wall_seconds"], 2) for w in fulls} if "1" in fulls else {}
        )
        report["cpu_count"] = os.cpu_count()
        report["load_average_at_end"] = os.getloadavg()
    finally:
        for repo in (input_repo, models_repo, out_repo):
            hook.delete_repository(repo, missing_ok=True)
    json.dump(report, sys.stdout, indent=2, default=str)
    print()


if __name__ == "__main__":
    main()
