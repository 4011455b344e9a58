"""``LakeFSCommitSensor`` in poke, reschedule and deferrable mode, run by the real ``airflow dags test``
against the real lakeFS, with commits made while it waits."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from mlrepo_devstack import stack

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.commits import commit_file
from tests.integration.conftest import LakeFSServer
from tests.integration.sensor_dags import start_sensor_run

WAITING = r"No new matching commit on branch 'main'"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def sensor_env(airflow_metadata_db: str, lakefs_server: LakeFSServer) -> None:
    """`airflow dags test` needs the migrated session DB and the lakeFS connection (env)."""


@pytest.mark.lakefs_outage
def test_poke_mode_returns_commits_made_while_waiting_and_survives_a_lakefs_outage(
    hook: LakeFSHook, repo: str, sensor_env: None
) -> None:
    commit_file(hook, repo, "main", "data/old.csv", "before the run")
    run = start_sensor_run(
        _now(), repository=repo, branch="main", prefixes=["data/"], mode="poke", poke_interval=1, timeout=240
    )
    waiting = run.wait_for_line(WAITING)
    stack.down(["lakefs"])
    try:
        run.wait_for_line(r"lakeFS unreachable, will check again", after=waiting)
    finally:
        stack.up(["lakefs"])
    back = run.wait_for_line(WAITING, after=waiting + 1)
    run.wait_for_line(WAITING, after=back + 1)  # polling again, nothing fired in between
    commit_file(hook, repo, "main", "docs/readme.md", "not data")
    first = commit_file(hook, repo, "main", "data/new.csv", "new")

    assert run.finish() == "success", run.output[-5000:]
    assert [c["id"] for c in run.result()] == [first.id]
    assert "Task failed" not in run.output


def test_reschedule_mode_keeps_its_baseline_across_pokes(hook: LakeFSHook, repo: str, sensor_env: None) -> None:
    run = start_sensor_run(
        _now(), repository=repo, branch="main", metadata={"kind": "train"}, mode="reschedule", poke_interval=1
    )
    first_poke = run.wait_for_line(WAITING)
    ignored = commit_file(hook, repo, "main", "a.csv", "a", metadata={"kind": "eval"})
    run.wait_for_line(WAITING, after=first_poke + 1)  # a later poke, in a new attempt of the task
    wanted = commit_file(hook, repo, "main", "b.csv", "b", metadata={"kind": "train"})

    assert run.finish() == "success", run.output[-5000:]
    result = run.result()
    assert [c["id"] for c in result] == [wanted.id]
    assert ignored.id not in run.output.split("new commit(s)")[-1]
    assert result[0]["metadata"] == {"kind": "train"}
    assert "UP_FOR_RESCHEDULE" in run.output
    # The baseline is resolved once and then read back from the task state store by later pokes.
    assert run.output.count("Baseline ") == 1


def test_deferrable_mode_hands_the_wait_to_the_trigger(hook: LakeFSHook, repo: str, sensor_env: None) -> None:
    baseline = hook.get_branch_head(repo, "main")
    run = start_sensor_run(
        _now(), repository=repo, branch="main", since_commit=baseline, deferrable=True, poke_interval=1
    )
    run.wait_for_line(r"Waiting for commits after " + baseline)
    commits = [commit_file(hook, repo, "main", f"part-{i}.csv", str(i)) for i in range(2)]

    assert run.finish() == "success", run.output[-5000:]
    found = [c["id"] for c in run.result()]
    # The trigger fires on the first head move it sees: the first commit, or both.
    assert found in ([commits[0].id], [commits[0].id, commits[1].id])


def test_missing_repository_fails_at_once_naming_it(sensor_env: None) -> None:
    run = start_sensor_run(_now(), repository="no-such-repo-x1", branch="main", mode="poke", poke_interval=1)
    assert run.finish(timeout=120) == "failed", run.output[-5000:]
    assert "no-such-repo-x1" in run.output
    assert "LakeFSNotFoundError" in run.output
