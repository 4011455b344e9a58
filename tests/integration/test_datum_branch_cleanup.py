"""Branches a datum pipeline run leaves behind (a batch or commit task killed before its clean-up) are
removed by the next run's plan and by ``mlrepo cleanup attempts``; nothing else is touched.

The example DAG ``dags/iris_batch_scoring.py`` run with the real ``airflow dags test`` (SQLite metadata
DB, local runner) on the real lakeFS. The leftovers are the branches a killed commit task leaves: the
finished run's batch branch (with a staged object) and merge branch, named as the run names them; and
one of a run that Airflow no longer has; and an attempt branch of the finished batch task with the
name releases before the DAG key gave it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.attempts import (
    DATUM_RUN_BRANCH_PREFIX,
    TaskInstanceId,
    branch_safe,
    datum_run_key,
    datum_run_prefix,
)
from tests.integration.dag_runs import cleanup_attempts_command, manual_run_id, session_home
from tests.integration.datums_journey import DAG_ID, commit_model, record, run_dag, scoring_repositories


@pytest.fixture
def scoring(hook: LakeFSHook, airflow_metadata_db: str) -> Iterator[str]:
    """The example DAG's three repositories (their prefix) and its file in the session's Airflow."""
    with scoring_repositories(hook) as prefix:
        yield prefix


def _cleanup(repository: str, *extra: str) -> str:
    return cleanup_attempts_command(repository, session_home(), *extra)


def _datum_branches(hook: LakeFSHook, repository: str) -> set[str]:
    return set(hook.list_branches(repository, DATUM_RUN_BRANCH_PREFIX))


@pytest.mark.timeout(1200)
def test_a_finished_runs_datum_branches_are_removed_by_the_next_plan_and_the_cleanup_command(
    hook: LakeFSHook,
    scoring: str,
) -> None:
    input_repo, models_repo, predictions_repo = (f"{scoring}-{kind}" for kind in ("input", "models", "predictions"))
    commit_model(hook, models_repo, 1.0)
    for i in range(3):
        hook.upload_object(input_repo, "main", f"records/{i:04d}.csv", record(i))
    hook.commit(input_repo, "main", "3 records")
    first = run_dag(scoring)
    assert first.state == "success", first.output[-6000:]
    run_id = manual_run_id(first.output)
    assert run_id is not None, first.output[-3000:]
    published = hook.get_branch_head(predictions_repo, "main")

    # what a commit task killed mid-merge leaves: the batch branch (staged work) and the merge branch
    finished = datum_run_prefix(datum_run_key(DAG_ID, run_id, "score"))
    gone = datum_run_prefix(uuid.uuid4().hex[:12])  # a run deleted from Airflow
    leftovers = {f"{finished}b0-try1", f"{finished}merge-try1", f"{gone}b0-try2"}
    for name in sorted(leftovers):
        hook.create_branch(predictions_repo, name, "main")
    hook.upload_object(predictions_repo, f"{finished}b0-try1", "scored/staged.csv", b"staged, never merged\n")
    hook.create_branch(predictions_repo, "mlrepo-d-notes", "main")  # a person's branch: never judged a leftover
    # an attempt branch of the finished batch task, named as releases before the DAG key named them
    batch = TaskInstanceId(DAG_ID, run_id, "score.process", 0)
    old_format = f"mlrepo-{branch_safe(batch.task_id)}-{batch.key}-try1"
    hook.create_branch(predictions_repo, old_format, "main")

    listed = _cleanup(predictions_repo)
    assert f"would delete  {finished}b0-try1" in listed, listed
    assert f"{DAG_ID}/{run_id} (pipeline score) is success" in listed, listed
    assert f"would delete  {gone}b0-try2" in listed, listed
    assert "its run was deleted" in listed, listed
    assert "keep          mlrepo-d-notes" in listed, listed
    assert f"would delete  {old_format}  (task instance {batch} is success)" in listed, listed
    assert _datum_branches(hook, predictions_repo) == leftovers | {"mlrepo-d-notes"}, "nothing deleted without --apply"

    # the next run's plan removes the finished run's branches; another DAG's (unknown) one is not its to judge
    hook.upload_object(input_repo, "main", "records/0003.csv", record(3))
    hook.commit(input_repo, "main", "1 new record")
    second = run_dag(scoring)
    assert second.state == "success", second.output[-6000:]
    assert f"Removing leftover branch {finished}b0-try1" in second.output, second.output[-6000:]
    assert _datum_branches(hook, predictions_repo) == {f"{gone}b0-try2", "mlrepo-d-notes"}
    assert hook.get_commit(predictions_repo, "main").parents[0] == published, "the run published on top, once"

    applied = _cleanup(predictions_repo, "--apply")
    assert f"deleted       {gone}b0-try2" in applied, applied
    assert f"deleted       {old_format}" in applied, applied
    assert _datum_branches(hook, predictions_repo) == {"mlrepo-d-notes"}
    assert hook.list_branches(predictions_repo, "mlrepo-") == ["mlrepo-d-notes"]
