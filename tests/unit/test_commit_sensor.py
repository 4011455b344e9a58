"""``LakeFSCommitSensor`` decisions without services: baseline rules, horizon, replay, deferral, events.

lakeFS is replaced by a small in-memory history (``FakeLakeFS``) and the task state store by a dict;
the real-lakeFS and real-Airflow behaviour is in tests/integration/test_commit_sensor.py and tests/e2e.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_mlrepo.exceptions import (
    CommitDetectionError,
    CommitNotAncestorError,
    LakeFSUnavailableError,
    NoNewCommitsError,
)
from airflow_mlrepo.hooks.lakefs import LakeFSCommit
from airflow_mlrepo.sensors.lakefs import STATE_KEY, LakeFSCommitSensor
from airflow_mlrepo.triggers.lakefs import LakeFSCommitTrigger

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _id(n: int) -> str:
    return f"{n:064x}"


class FakeLakeFS:
    """A linear branch history: commit n is created at T0 + n hours."""

    def __init__(self, count: int) -> None:
        self.commits = [
            LakeFSCommit(
                id=_id(n),
                parents=(_id(n - 1),) if n else (),
                committer="me",
                message=f"commit {n}",
                creation_date=int((T0 + timedelta(hours=n)).timestamp()),
                metadata={"n": str(n)},
                generation=n + 1,
            )
            for n in range(count)
        ]
        self.unavailable = False
        self.as_of_calls: list[datetime] = []

    def _check(self) -> None:
        if self.unavailable:
            raise LakeFSUnavailableError("lakeFS at http://lakefs is unreachable")

    def _index(self, ref: str) -> int:
        if ref == "main":
            return len(self.commits) - 1
        return [c.id for c in self.commits].index(ref)

    def get_branch_head(self, repository: str, branch: str) -> str:
        self._check()
        return self.commits[-1].id

    def resolve_commit_id(self, repository: str, ref: str) -> str:
        return self.commits[self._index(ref)].id

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        return self.commits[self._index(ref)]

    def branch_head_as_of(self, repository: str, branch: str, when: datetime) -> LakeFSCommit:
        self._check()
        self.as_of_calls.append(when)
        return [c for c in self.commits if c.creation_date <= when.timestamp()][-1]

    def is_ancestor(self, repository: str, commit_id: str, branch: str) -> bool:
        ids = [c.id for c in self.commits]
        return commit_id in ids and ids.index(commit_id) <= self._index(branch)

    def log_commits(self, repository: str, ref: str, *, stop_at: str | None = None, **kwargs: Any) -> Any:
        self._check()
        for commit in reversed(self.commits[: self._index(ref) + 1]):
            yield commit
            if commit.id == stop_at:
                return

    def commit_touches_paths(self, repository: str, commit_id: str, *args: Any, **kwargs: Any) -> bool:
        return True

    def diff_refs(self, repository: str, left: str, right: str, **kwargs: Any) -> Any:
        yield SimpleNamespace(path=kwargs.get("prefix") or "x")

    def commit(self, n: int) -> None:
        self.commits.append(FakeLakeFS(n + 1).commits[-1])


class MemoryTaskState:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = value


def _context(
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    prev_end_success: datetime | None = None,
    run_type: str = "scheduled",
    run_after: datetime | None = None,
    store: MemoryTaskState | None = None,
) -> dict[str, Any]:
    return {
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_data_interval_end_success": prev_end_success,
        "dag_run": SimpleNamespace(run_type=run_type, run_after=run_after or end),
        "task_state_store": store,
    }


def _sensor(lakefs: FakeLakeFS, **kwargs: Any) -> LakeFSCommitSensor:
    sensor = LakeFSCommitSensor(task_id="wait", repository="data", branch="main", **kwargs)
    sensor._hook = lambda: lakefs  # type: ignore[method-assign, assignment, return-value]
    return sensor


def test_baseline_is_the_head_as_of_the_previous_successful_runs_interval_end() -> None:
    lakefs = FakeLakeFS(6)
    sensor = _sensor(lakefs)
    context = _context(
        start=T0 + timedelta(hours=3, minutes=30),
        end=T0 + timedelta(hours=9),
        prev_end_success=T0 + timedelta(hours=1, minutes=5),
    )
    result = sensor.poke(context)  # type: ignore[arg-type]
    assert isinstance(result, PokeReturnValue)
    assert [c["id"] for c in result.xcom_value] == [_id(n) for n in (2, 3, 4, 5)]


def test_baseline_falls_back_to_the_interval_start_then_run_after() -> None:
    lakefs = FakeLakeFS(6)
    first_run = _context(start=T0 + timedelta(hours=3, minutes=30), end=T0 + timedelta(hours=9))
    result = _sensor(lakefs).poke(first_run)  # type: ignore[arg-type]
    assert [c["id"] for c in result.xcom_value] == [_id(4), _id(5)]  # type: ignore[union-attr]
    asset_run = _context(run_after=T0 + timedelta(hours=4, minutes=1), run_type="asset_triggered")
    result = _sensor(lakefs).poke(asset_run)  # type: ignore[arg-type]
    assert [c["id"] for c in result.xcom_value] == [_id(5)]  # type: ignore[union-attr]


def test_explicit_since_commit_wins() -> None:
    lakefs = FakeLakeFS(4)
    context = _context(start=T0, end=T0 + timedelta(hours=9), prev_end_success=T0, run_type="manual")
    result = _sensor(lakefs, since_commit=_id(2)).poke(context)  # type: ignore[arg-type]
    assert [c["id"] for c in result.xcom_value] == [_id(3)]  # type: ignore[union-attr]
    assert lakefs.as_of_calls == []


def test_live_window_waits_then_sees_new_commits_with_the_baseline_kept_in_the_task_state() -> None:
    lakefs = FakeLakeFS(3)
    store = MemoryTaskState()
    context = _context(start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=6), store=store, run_type="manual")
    sensor = _sensor(lakefs)
    assert sensor.poke(context) is False  # type: ignore[arg-type]
    assert store.values[STATE_KEY]["baseline"] == _id(2)
    calls = len(lakefs.as_of_calls)
    lakefs.commit(3)
    result = _sensor(lakefs).poke(context)  # a new operator object, as in reschedule mode
    assert [c["id"] for c in result.xcom_value] == [_id(3)]  # type: ignore[union-attr]
    assert len(lakefs.as_of_calls) == calls  # the baseline came from the task state store
    assert store.values[STATE_KEY]["head"] == _id(3)
    assert store.values[STATE_KEY]["commit_ids"] == [_id(3)]


def test_a_cleared_run_replays_the_first_result_and_never_sees_newer_commits() -> None:
    lakefs = FakeLakeFS(3)
    store = MemoryTaskState()
    context = _context(start=T0 + timedelta(hours=1, minutes=30), end=T0 + timedelta(hours=9), store=store)
    first = _sensor(lakefs).poke(context)  # type: ignore[arg-type]
    lakefs.commit(3)
    lakefs.commit(4)
    again = _sensor(lakefs).poke(context)  # type: ignore[arg-type]
    assert first.xcom_value == again.xcom_value  # type: ignore[union-attr]
    assert [c["id"] for c in again.xcom_value] == [_id(2)]  # type: ignore[union-attr]


def test_replay_detects_a_reset_branch() -> None:
    lakefs = FakeLakeFS(3)
    store = MemoryTaskState()
    context = _context(start=T0 + timedelta(hours=1, minutes=30), end=T0 + timedelta(hours=9), store=store)
    _sensor(lakefs).poke(context)  # type: ignore[arg-type]
    lakefs.commits = lakefs.commits[:2]  # the branch was reset under the run
    with pytest.raises(CommitNotAncestorError, match="no longer in the branch's history"):
        _sensor(lakefs).poke(context)  # type: ignore[arg-type]


def test_backfilled_run_is_bounded_by_the_head_as_of_its_interval_end() -> None:
    lakefs = FakeLakeFS(8)
    context = _context(
        start=T0 + timedelta(hours=2, minutes=30), end=T0 + timedelta(hours=4, minutes=30), run_type="backfill"
    )
    result = _sensor(lakefs).poke(context)  # type: ignore[arg-type]
    assert [c["id"] for c in result.xcom_value] == [_id(3), _id(4)]  # type: ignore[union-attr]


def test_closed_empty_window_ends_at_once() -> None:
    lakefs = FakeLakeFS(8)
    context = _context(
        start=T0 + timedelta(hours=2, minutes=10), end=T0 + timedelta(hours=2, minutes=50), run_type="backfill"
    )
    with pytest.raises(NoNewCommitsError, match="belong to the next run's window") as err:
        _sensor(lakefs).poke(context)  # type: ignore[arg-type]
    assert "'data'" in str(err.value)
    assert "'main'" in str(err.value)
    with pytest.raises(AirflowSkipException):
        _sensor(lakefs, soft_fail=True).poke(context)  # type: ignore[arg-type]


def test_scheduled_runs_see_disjoint_windows_up_to_their_interval_ends() -> None:
    lakefs = FakeLakeFS(8)
    first = _context(start=T0, end=T0 + timedelta(hours=3, minutes=30), prev_end_success=T0 + timedelta(minutes=30))
    second = _context(
        start=T0 + timedelta(hours=3, minutes=30),
        end=T0 + timedelta(hours=7),
        prev_end_success=T0 + timedelta(hours=3, minutes=30),
    )
    seen_first = [c["id"] for c in _sensor(lakefs).poke(first).xcom_value]  # type: ignore[arg-type, union-attr]
    seen_second = [c["id"] for c in _sensor(lakefs).poke(second).xcom_value]  # type: ignore[arg-type, union-attr]
    assert seen_first == [_id(n) for n in (1, 2, 3)]
    assert seen_second == [_id(n) for n in (4, 5, 6, 7)]


def test_a_scheduled_run_before_its_interval_end_waits_for_it() -> None:
    lakefs = FakeLakeFS(3)
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    assert _sensor(lakefs).poke(_context(start=T0, end=soon)) is False  # type: ignore[arg-type]


def test_a_live_window_moves_its_start_forward_as_it_waits() -> None:
    lakefs = FakeLakeFS(3)
    store = MemoryTaskState()
    context = _context(start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=6), store=store, run_type="manual")
    sensor = _sensor(lakefs, metadata={"n": "9"})
    assert sensor.poke(context) is False  # type: ignore[arg-type]
    for n in range(3, 9):
        lakefs.commit(n)
    assert _sensor(lakefs, metadata={"n": "9"}).poke(context) is False  # type: ignore[arg-type]
    assert store.values[STATE_KEY]["scanned"] == _id(8)  # the next check starts after commit 8
    walked: list[str] = []
    original = lakefs.log_commits

    def counting_log(repository: str, ref: str, **kwargs: Any) -> Any:
        for commit in original(repository, ref, **kwargs):
            walked.append(commit.id)
            yield commit

    lakefs.log_commits = counting_log  # type: ignore[method-assign]
    lakefs.commit(9)
    result = _sensor(lakefs, metadata={"n": "9"}).poke(context)  # type: ignore[arg-type]
    assert [c["id"] for c in result.xcom_value] == [_id(9)]  # type: ignore[union-attr]
    assert walked == [_id(9), _id(8)]  # not the whole wait since commit 2
    assert store.values[STATE_KEY]["baseline"] == _id(2)


def test_unreachable_lakefs_is_not_yet_in_poke_mode() -> None:
    lakefs = FakeLakeFS(3)
    lakefs.unavailable = True
    assert _sensor(lakefs).poke(_context(start=T0, end=T0 + timedelta(hours=9))) is False  # type: ignore[arg-type]


def test_deferrable_mode_defers_with_the_resolved_baseline() -> None:
    lakefs = FakeLakeFS(3)
    sensor = _sensor(lakefs, deferrable=True, prefixes=["data/"], metadata={"k": "v"}, poke_interval=7, timeout=60)
    context = _context(
        start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=6), store=MemoryTaskState(), run_type="manual"
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, LakeFSCommitTrigger)
    assert trigger.serialize()[1] == {
        "repository": "data",
        "branch": "main",
        "baseline_commit": _id(2),
        "lakefs_conn_id": "lakefs_default",
        "prefixes": ["data/"],
        "objects": [],
        "metadata": {"k": "v"},
        "first_parent": False,
        "poll_interval": 7.0,
    }
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=60)


def test_deferrable_mode_returns_at_once_when_commits_are_already_there() -> None:
    lakefs = FakeLakeFS(3)
    sensor = _sensor(lakefs, deferrable=True)
    result = sensor.execute(_context(start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=9)))  # type: ignore[arg-type]
    assert [c["id"] for c in result] == [_id(1), _id(2)]


def test_execute_complete_records_and_returns_the_events_commits() -> None:
    lakefs = FakeLakeFS(3)
    store = MemoryTaskState()
    sensor = _sensor(lakefs, deferrable=True)
    event = {
        "status": "success",
        "repository": "data",
        "branch": "main",
        "baseline": _id(0),
        "head": _id(2),
        "commits": [c.to_dict() for c in lakefs.commits[1:]],
    }
    result = sensor.execute_complete(_context(store=store), event)  # type: ignore[arg-type]
    assert [c["id"] for c in result] == [_id(1), _id(2)]
    assert store.values[STATE_KEY]["commit_ids"] == [_id(1), _id(2)]


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [("CommitNotAncestorError", CommitNotAncestorError), ("KeyError", CommitDetectionError)],
)
def test_execute_complete_raises_the_triggers_error(error_type: str, expected: type[Exception]) -> None:
    sensor = _sensor(FakeLakeFS(1), deferrable=True)
    event = {"status": "error", "error_type": error_type, "message": "branch 'main' of 'data' was reset"}
    with pytest.raises(expected, match="was reset"):
        sensor.execute_complete(_context(), event)  # type: ignore[arg-type]


def test_constructor_does_no_io() -> None:
    sensor = LakeFSCommitSensor(task_id="wait", repository="{{ params.repo }}", branch="main", lakefs_conn_id="nope")
    assert sensor.repository == "{{ params.repo }}"
    assert "repository" in sensor.template_fields
