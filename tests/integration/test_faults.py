"""Kill the container process, or the whole task process, at random points: the target branch never
shows partial output, and the retry of the same run leaves exactly one output commit.

Real `airflow dags test` runs the task (its own process, local runner); the retry is
`airflow tasks test <dag> <task> <run_id>` in the same DAG run; lakeFS is the real server.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.attempts import ATTEMPT_BRANCH_PREFIX
from tests.integration.commits import commit_file
from tests.integration.dag_runs import (
    COPY_JOB,
    AirflowHome,
    BackgroundDagRun,
    find_process,
    manual_run_id,
    remove_dag,
    run_task_again,
    session_home,
    write_dag,
)
from tests.secret_scan import SecretScan, local_stack_logs_dir, scan_of_local_stack

#: ``make test`` runs 8 trials (4 kills of the container, 4 of the task); the reliability figures in
#: docs/benchmarks.md come from ``MLREPO_FAULT_TRIALS=20`` (or more) runs of this same test.
TRIALS = int(os.environ.get("MLREPO_FAULT_TRIALS", "8"))
CHUNKS = 4
WORKERS = 2
EXPECTED = {f"out/training_data-{i}.txt" for i in range(CHUNKS)} | {"out/run.json"}


@pytest.fixture
def data_repo(hook: LakeFSHook) -> Iterator[str]:
    name = f"fault-data-{uuid.uuid4().hex[:8]}"
    hook.create_repository(name, f"local://{name}")
    commit_file(hook, name, "main", "data/a.csv", "a,b\n1,2\n")
    yield name
    hook.delete_repository(name, missing_ok=True)


def _output_paths(hook: LakeFSHook, repo: str, ref: str) -> set[str]:
    return {o.path for o in hook.list_objects(repo, ref, "out/")}


def _trial(hook: LakeFSHook, data: str, trial: int, delay: float, home: AirflowHome, scan: SecretScan) -> str:
    """One kill-and-retry trial on a models repository of its own; returns what the kill hit."""
    kill_task_process = trial % 2 == 1
    models = f"fault-models-{uuid.uuid4().hex[:8]}"
    hook.create_repository(models, f"local://{models}")
    marker = uuid.uuid4().hex
    dag_id = write_dag(
        "train",
        home,
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/out/",
        image="example/train:1",
        cmds=["python", COPY_JOB, "--chunks", str(CHUNKS), "--tag", marker],
    )
    outputs: list[str] = []
    try:
        before = hook.get_branch_head(models, "main")
        run = BackgroundDagRun(dag_id, datetime.now(timezone.utc), home)
        container = find_process(marker, timeout=180)
        assert container is not None, run.output[-3000:]
        # the container writes for ~1 s, then the operator commits and merges: kill anywhere in there
        time.sleep(delay)
        victim = run.process.pid if kill_task_process else container
        with contextlib.suppress(ProcessLookupError):  # already finished: a valid point too
            os.kill(victim, signal.SIGKILL)
        text = run.finish()
        outputs.append(text)
        run_id = manual_run_id(text)
        assert run_id, text[-3000:]

        head = hook.get_branch_head(models, "main")
        seen = _output_paths(hook, models, "main")
        assert seen in (set(), EXPECTED), f"trial {trial}: partial output {seen}"
        if head != before:
            assert seen == EXPECTED
        outcome = "merged-before-kill" if head != before else "untouched"

        code, retry_output = run_task_again(dag_id, "train", run_id, home, timeout=300)
        outputs.append(retry_output)
        assert code == 0, retry_output[-3000:]
        merges = [c for c in hook.commits_since(models, "main", before) if c.is_merge]
        assert len(merges) == 1, f"trial {trial}: {len(merges)} output merges for one run"
        assert merges[0].metadata["mlrepo.run_id"] == run_id
        assert _output_paths(hook, models, "main") == EXPECTED
        assert hook.list_branches(models, ATTEMPT_BRANCH_PREFIX) == []
        return f"{'task' if kill_task_process else 'container'}:{outcome}"
    finally:
        remove_dag(dag_id, home)
        for i, output in enumerate(outputs):
            scan.text("task output", f"trial {trial} run {i} output", output)
        with contextlib.suppress(Exception):  # a failed trial's own error matters more
            scan.commits(hook, models)
        hook.delete_repository(models, missing_ok=True)


@pytest.mark.timeout(1800)
def test_kills_never_expose_partial_output_and_retry_commits_once(
    hook: LakeFSHook, data_repo: str, airflow_metadata_db: str, tmp_path: Path
) -> None:
    rng = random.Random(4242)
    delays = [rng.uniform(0.0, 4.0 if trial % 2 else 1.2) for trial in range(TRIALS)]
    # two workers, each with its own copy of the migrated metadata DB (SQLite takes one writer)
    homes = [session_home().clone(tmp_path / f"home-{worker}") for worker in range(WORKERS)]
    scan = scan_of_local_stack()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outcomes = list(
            pool.map(lambda t: _trial(hook, data_repo, t, delays[t], homes[t % WORKERS], scan), range(TRIALS))
        )
    summary = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    print(f"\n[faults] {TRIALS} trials, every retry committed exactly once: {summary}")
    assert any(o.endswith("untouched") for o in outcomes)
    # the run ends with a secret scan: task logs, lineage outbox, commit metadata, the stack's logs
    scan.files("airflow home", [home.path for home in homes])
    scan.files("stack log", [local_stack_logs_dir()])
    scan.commits(hook, data_repo)
    print(f"[faults] {scan.report()}")
    assert not scan.hits, scan.report()
