from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlrepo.exceptions import CommitNotAncestorError
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.pinning import (
    ASSET_EVENT_KEY,
    PinnedInput,
    asset_event_commits,
    check_against_first_attempt,
    run_instant,
)

T = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _event(repository: str, branch: str, commit_id: str, ts: str, *, from_trigger: bool) -> Any:
    facts = {ASSET_EVENT_KEY: {"repository": repository, "branch": branch, "commit_id": commit_id}}
    extra = {"from_trigger": True, "payload": facts} if from_trigger else facts
    return SimpleNamespace(extra=extra, timestamp=ts)


def test_asset_event_commits_from_watcher_and_webhook_events_oldest_first() -> None:
    events = {
        "asset-a": [
            _event("train", "main", "c2", "2026-11-01T00:02", from_trigger=True),
            _event("train", "dev", "cX", "2026-11-01T00:03", from_trigger=True),
        ],
        "asset-b": [
            _event("train", "main", "c1", "2026-11-01T00:01", from_trigger=False),
            SimpleNamespace(extra={"from_rest_api": True}, timestamp="x"),
        ],
    }
    context = {"triggering_asset_events": events}
    assert asset_event_commits(context, "train", "main") == ["c1", "c2"]
    assert asset_event_commits(context, "train", "dev") == ["cX"]
    assert asset_event_commits({}, "train", "main") == []


def test_run_instant_prefers_data_interval_end_then_run_after() -> None:
    later = datetime(2026, 11, 2, tzinfo=timezone.utc)
    assert run_instant({"data_interval_end": T, "dag_run": SimpleNamespace(run_after=later)}) == T
    assert run_instant({"data_interval_end": None, "dag_run": SimpleNamespace(run_after=later)}) == later
    with pytest.raises(ValueError, match="pin"):
        run_instant({"dag_run": SimpleNamespace(run_after=None)})


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.data[key] = value
        self.retention = retention


def _pin(commit: str, rule: str = "as_of") -> PinnedInput:
    return PinnedInput("training_data", LakeFSLocation.parse("lakefs://train/main/data/"), commit, rule, T.isoformat())


def test_first_attempt_records_pins_and_a_moved_branch_is_reported() -> None:
    store = _Store()
    check_against_first_attempt({"task_state_store": store}, {"training_data": _pin("c1")})
    assert store.data["mlrepo_pins"] == {"training_data": "c1"}
    assert store.retention == timedelta.max
    # a retry or clear that resolves the same commit is fine
    check_against_first_attempt({"task_state_store": store}, {"training_data": _pin("c1")})
    with pytest.raises(CommitNotAncestorError, match=r"reset or force-moved.*first attempt read c1"):
        check_against_first_attempt({"task_state_store": store}, {"training_data": _pin("c9")})


def test_pins_by_other_rules_are_not_recorded_and_old_airflow_is_skipped() -> None:
    store = _Store()
    check_against_first_attempt({"task_state_store": store}, {"m": _pin("c1", rule="latest")})
    assert store.data == {}
    check_against_first_attempt({}, {"training_data": _pin("c1")})


class _NoSuchRef:
    """A lakeFS boundary where the input's branch does not exist (lakeFS answers 404 "commit not found")."""

    def branch_exists(self, repository: str, branch: str) -> bool:
        return False

    def resolve_commit_id(self, repository: str, ref: str) -> str:
        from airflow_mlrepo.exceptions import LakeFSNotFoundError

        raise LakeFSNotFoundError("commit not found", repository=repository, ref=ref, status=404)


def test_a_missing_branch_is_an_error_naming_the_input_and_its_location() -> None:
    from airflow_mlrepo.exceptions import LakeFSNotFoundError
    from airflow_mlrepo.pinning import pin_input

    source = LakeFSLocation.parse("lakefs://iris-train/no-such-branch/data/")
    with pytest.raises(LakeFSNotFoundError) as raised:
        pin_input(_NoSuchRef(), "training_data", source, {})  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith("Input 'training_data': lakefs://iris-train/no-such-branch/data/")
    assert "no branch, tag or commit 'no-such-branch'" in message
    assert (raised.value.repository, raised.value.ref, raised.value.status) == ("iris-train", "no-such-branch", 404)
