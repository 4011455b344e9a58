"""The lakeFS webhook receiver with FastAPI's TestClient; the metadata DB and lakeFS are faked here.

The real api-server, lakeFS action and metadata DB are exercised in tests/e2e/test_lakefs_to_dag_runs.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_mlrepo.exceptions import LakeFSUnavailableError
from airflow_mlrepo.webhooks.lakefs import (
    EVENTS_ROUTE,
    SECRET_HEADER,
    RecordedEvent,
    ScheduledAsset,
    create_app,
)

SECRET = "s3cr3t-value-for-tests"
COMMIT = "c" * 64


class MemoryRecorder:
    """Scheduled assets and recorded events, deduplicated by asset + commit id like the real one."""

    def __init__(self, assets: list[ScheduledAsset]) -> None:
        self.assets = assets
        self.events: list[tuple[ScheduledAsset, dict[str, Any]]] = []

    def scheduled_assets(self, repository: str) -> list[ScheduledAsset]:
        return [a for a in self.assets if a.uri.startswith(f"lakefs://{repository}/")]

    def record(self, asset: ScheduledAsset, facts: Mapping[str, Any]) -> RecordedEvent:
        for index, (seen, seen_facts) in enumerate(self.events):
            if seen == asset and seen_facts["commit_id"] == facts["commit_id"]:
                return RecordedEvent(asset, index, duplicate=True)
        self.events.append((asset, dict(facts)))
        return RecordedEvent(asset, len(self.events) - 1, duplicate=False)


ASSETS = [
    ScheduledAsset(1, "whole branch", "lakefs://data/main"),
    ScheduledAsset(2, "train set", "lakefs://data/main/train"),
    ScheduledAsset(3, "eval set", "lakefs://data/main/eval"),
    ScheduledAsset(4, "other branch", "lakefs://data/dev"),
]


@pytest.fixture
def recorder() -> MemoryRecorder:
    return MemoryRecorder(list(ASSETS))


@pytest.fixture
def checked_paths() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def client(recorder: MemoryRecorder, checked_paths: list[tuple[str, str, str]]) -> TestClient:
    def checker() -> Any:
        def touches(repository: str, commit_id: str, path: str) -> bool:
            checked_paths.append((repository, commit_id, path))
            return path == "train"

        return touches

    return TestClient(create_app(recorder=recorder, secret_provider=lambda: SECRET, path_checker_factory=checker))


def _event(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_type": "post-commit",
        "event_time": "2026-03-01T10:00:00Z",
        "action_name": "airflow-mlrepo",
        "hook_id": "airflow_mlrepo_webhook",
        "repository_id": "data",
        "branch_id": "main",
        "commit_id": COMMIT,
        "commit_message": "add training data",
        "committer": "alice",
        "commit_metadata": {"stage": "train"},
    }
    event.update(overrides)
    return event


def _post(client: TestClient, body: Any, secret: str | None = SECRET, raw: bytes | None = None) -> Any:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    if raw is not None:
        return client.post(f"{EVENTS_ROUTE}", content=raw, headers=headers)
    return client.post(f"{EVENTS_ROUTE}", json=body, headers=headers)


def test_commit_records_one_event_per_matching_asset(
    client: TestClient, recorder: MemoryRecorder, checked_paths: list[tuple[str, str, str]]
) -> None:
    answer = _post(client, _event())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [e["asset_uri"] for e in body["events"]] == ["lakefs://data/main", "lakefs://data/main/train"]
    assert all(not e["duplicate"] for e in body["events"])
    assert sorted(checked_paths) == [("data", COMMIT, "eval"), ("data", COMMIT, "train")]
    facts = recorder.events[0][1]
    assert facts == {
        "repository": "data",
        "branch": "main",
        "commit_id": COMMIT,
        "commits": [COMMIT],
        "source": "webhook",
        "event_type": "post-commit",
        "event_time": "2026-03-01T10:00:00Z",
        "action_name": "airflow-mlrepo",
        "hook_id": "airflow_mlrepo_webhook",
        "committer": "alice",
        "commit_message": "add training data",
    }


def test_a_retry_of_the_same_commit_records_nothing_new(client: TestClient, recorder: MemoryRecorder) -> None:
    assert _post(client, _event()).status_code == 200
    again = _post(client, _event(event_time="2026-03-01T10:05:00Z"))
    assert again.status_code == 200
    assert all(e["duplicate"] for e in again.json()["events"])
    assert len(recorder.events) == 2


def test_merge_event_records_the_merge_commit(client: TestClient, recorder: MemoryRecorder) -> None:
    answer = _post(client, _event(event_type="post-merge", source_ref="feature", merge_source="feature"))
    assert answer.status_code == 200
    facts = recorder.events[0][1]
    assert facts["event_type"] == "post-merge"
    assert facts["source_ref"] == "feature"
    assert facts["commit_id"] == COMMIT


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
def test_unauthenticated_calls_are_rejected_before_reading_the_body(
    client: TestClient, recorder: MemoryRecorder, secret: str | None
) -> None:
    answer = _post(client, None, secret=secret, raw=b"{not json")
    assert answer.status_code == 401
    assert SECRET_HEADER in answer.json()["detail"]
    assert recorder.events == []


def test_no_configured_secret_refuses_everything(recorder: MemoryRecorder) -> None:
    client = TestClient(create_app(recorder=recorder, secret_provider=lambda: None))
    answer = _post(client, _event(), secret="anything")
    assert answer.status_code == 503
    assert "webhook_secret" in answer.json()["detail"]


def test_malformed_bodies(client: TestClient) -> None:
    assert _post(client, None, raw=b"{not json").status_code == 400
    assert _post(client, ["a list"]).status_code == 400
    missing = _post(client, {"event_type": "post-commit"})
    assert missing.status_code == 422
    assert any(error["field"] == "repository_id" for error in missing.json()["errors"])
    wrong_type = _post(client, _event(event_type="pre-commit"))
    assert wrong_type.status_code == 422
    assert "pre-commit" in wrong_type.text
    no_commit = _post(client, _event(commit_id=None))
    assert no_commit.status_code == 422
    bad_repo = _post(client, _event(repository_id="Bad Repo"))
    assert bad_repo.status_code == 422


def test_unknown_repository_is_404(client: TestClient) -> None:
    answer = _post(client, _event(repository_id="unknown-repo"))
    assert answer.status_code == 404
    assert "unknown-repo" in answer.json()["detail"]


def test_known_repository_other_branch_matches_nothing(client: TestClient, recorder: MemoryRecorder) -> None:
    answer = _post(client, _event(branch_id="experiment"))
    assert answer.status_code == 200
    assert answer.json()["events"] == []
    assert recorder.events == []


def test_lakefs_unreachable_for_the_path_check_is_503(recorder: MemoryRecorder) -> None:
    def checker() -> Any:
        def touches(repository: str, commit_id: str, path: str) -> bool:
            raise LakeFSUnavailableError("lakeFS at http://lakefs:8000 is unreachable")

        return touches

    client = TestClient(create_app(recorder=recorder, secret_provider=lambda: SECRET, path_checker_factory=checker))
    answer = _post(client, _event())
    assert answer.status_code == 503
    assert "unreachable" in answer.json()["detail"]
    assert recorder.events == []


def test_the_secret_is_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _post(client, _event(), secret="wrong-guess-123")
    _post(client, _event())
    assert SECRET not in caplog.text
    assert "wrong-guess-123" not in caplog.text
    assert "missing or wrong secret" in caplog.text
