"""lakeFS dies under a running task: the attempt branch it leaves is removed by the next task of the
DAG and by ``mlrepo cleanup attempts``; a running task's branch is never touched.

Real Airflow (`airflow dags test`, its own process, local runner, SQLite metadata DB) and the real
lakeFS of the stack, stopped and started through the stack at a random point of the container's run.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from mlrepo_devstack import stack

from airflow_mlrepo.cleanup_commands import cleanup_attempts
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.attempts import ATTEMPT_BRANCH_PREFIX
from tests.integration.commits import commit_file
from tests.integration.dag_runs import (
    COPY_JOB,
    AirflowHome,
    BackgroundDagRun,
    cleanup_attempts_command,
    find_process,
    remove_dag,
    session_home,
    write_dag,
)

#: The container sleeps this long before writing: time to run the clean-up command under it.
CONTAINER_SLEEP = 8.0


def _cleanup(models: str, home: AirflowHome, *extra: str) -> str:
    return cleanup_attempts_command(models, home, *extra)


def _kill_lakefs(run: BackgroundDagRun, delay: float) -> str:
    """Stop lakeFS after ``delay`` s, wait for the task to fail, start lakeFS again."""
    time.sleep(delay)
    stack.down(["lakefs"])
    try:
        output = run.finish()
    finally:
        stack.up(["lakefs"])
    return output


def _attempts(hook: LakeFSHook, models: str) -> list[str]:
    return hook.list_branches(models, ATTEMPT_BRANCH_PREFIX)


@pytest.mark.lakefs_outage
@pytest.mark.timeout(900)
def test_leftovers_of_a_lakefs_outage_are_cleaned_and_running_branches_kept(
    hook: LakeFSHook, repo_pair: tuple[str, str], airflow_metadata_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("MLREPO_CLEANUP_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    data, models = repo_pair
    commit_file(hook, data, "main", "data/a.csv", "a,b\n1,2\n")
    home = session_home()
    marker = uuid.uuid4().hex
    dag_id = write_dag(
        "train",
        home,
        inputs={"training_data": f"lakefs://{data}/main/data/"},
        output_location=f"lakefs://{models}/main/out/",
        image="example/train:1",
        cmds=["python", COPY_JOB, "--sleep", str(CONTAINER_SLEEP), "--tag", marker],
    )
    when = datetime.now(timezone.utc)
    try:
        before = hook.get_branch_head(models, "main")
        # 1. lakeFS dies under the first run: the task fails, its attempt branch stays
        first_run = BackgroundDagRun(dag_id, when, home)
        assert find_process(marker, timeout=240) is not None, first_run.output[-3000:]
        first_delay = rng.uniform(0.0, CONTAINER_SLEEP - 1)
        first = _kill_lakefs(first_run, first_delay)
        [leftover] = _attempts(hook, models)
        assert "state=failed" in first, f"seed {seed}: {first[-3000:]}"
        assert hook.get_branch_head(models, "main") == before

        # 2. the clean-up command lists it, and deletes nothing without --apply
        listed = _cleanup(models, home)
        assert f"would delete  {leftover}" in listed, listed
        assert "is failed" in listed, listed
        assert _attempts(hook, models) == [leftover]

        # 3. the next run of the DAG removes it before its container starts ...
        second = BackgroundDagRun(dag_id, when + timedelta(minutes=1), home)
        assert find_process(marker, timeout=240) is not None, second.output[-3000:]
        started = time.monotonic()
        [running] = _attempts(hook, models)
        assert running != leftover
        # ... and the clean-up command (its body, in this process: the command's start-up alone
        # outlasts the container), even with --apply, keeps the running task's branch
        cleanup_attempts(hook, argparse.Namespace(location=f"lakefs://{models}", apply=True, json=False))
        kept = capsys.readouterr().out
        assert f"keep          {running}" in kept, kept
        assert "is running" in kept, kept
        assert _attempts(hook, models) == [running]
        # 4. lakeFS dies under that run too: the clean-up command deletes what it left
        remaining = CONTAINER_SLEEP - (time.monotonic() - started)
        assert remaining > 1, f"the clean-up took {CONTAINER_SLEEP - remaining:.1f}s: the container no longer sleeps"
        second_output = _kill_lakefs(second, rng.uniform(0.0, remaining - 1))
        assert f"Removing leftover branch {leftover}" in second_output, second_output[-3000:]
        assert _attempts(hook, models) == [running], f"seed {seed}: {second_output[-3000:]}"
        cleanup_attempts(hook, argparse.Namespace(location=f"lakefs://{models}", apply=True, json=False))
        applied = capsys.readouterr().out
        assert f"deleted       {running}" in applied, applied
        assert _attempts(hook, models) == []
        assert hook.get_branch_head(models, "main") == before
        print(f"\n[cleanup] seed {seed}: lakeFS stopped {first_delay:.2f}s into the first container")
    finally:
        remove_dag(dag_id, home)
