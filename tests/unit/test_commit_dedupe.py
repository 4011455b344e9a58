"""One asset event per (asset, repository, commit) across the webhook and the watcher: the watcher side.

The receiver side, with both sources on one asset in a real Airflow, is
``tests/e2e/test_commit_dedupe_e2e.py::test_webhook_and_watcher_on_one_asset_fire_once_per_commit``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_mlrepo.assets import seen_commits
from tests.unit.test_commit_triggers import MemoryAccessor, ScriptedPoller, _commit, _drive_watcher


def test_the_watcher_does_not_fire_for_a_commit_the_webhook_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    b, c = _commit("b"), _commit("c")
    store = MemoryAccessor({seen_commits.commit_key("data", b.id): seen_commits.mark_value("webhook", 7)})
    poller = ScriptedPoller(["H1", "H2", "H3"], {("H1", "H2"): [b], ("H2", "H3"): [c]})
    events, trigger = _drive_watcher(monkeypatch, poller, store, 0.5)
    assert [event["commits"] for event in events] == [[c.id]]  # b was recorded by the webhook
    assert store.values[trigger.watermark_key]["commit_id"] == "H3"  # and the watcher moved past it


def test_the_watcher_marks_what_it_fires_for_so_the_webhook_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    b, c = _commit("b"), _commit("c")
    store = MemoryAccessor()
    poller = ScriptedPoller(["H1", "H2"], {("H1", "H2"): [b, c]})
    events, _ = _drive_watcher(monkeypatch, poller, store, 0.3)
    assert [event["commits"] for event in events] == [[b.id, c.id]]
    for commit in (b, c):
        assert store.values[seen_commits.commit_key("data", commit.id)]["source"] == "watcher"


def test_the_watchers_own_mark_does_not_hide_a_commit_whose_event_was_never_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A triggerer that died between marking b and the supervisor storing b's event comes back with the
    # old watermark (H1) and b's watcher mark: b must fire again, not be taken for recorded.
    b = _commit("b")
    store = MemoryAccessor({seen_commits.commit_key("data", b.id): seen_commits.mark_value("watcher")})
    poller = ScriptedPoller(["H1", "H2"], {("H1", "H2"): [b]})
    events, _ = _drive_watcher(monkeypatch, poller, store, 0.3)
    assert [event["commits"] for event in events] == [[b.id]]


def test_marks_read_back_as_json_text_count_by_their_source() -> None:
    b = _commit("b")
    webhook = MemoryAccessor({seen_commits.commit_key("data", b.id): json.dumps(seen_commits.mark_value("webhook", 3))})
    watcher = MemoryAccessor({seen_commits.commit_key("data", b.id): json.dumps(seen_commits.mark_value("watcher"))})
    assert asyncio.run(seen_commits.all_recorded([webhook], "data", [b.id]))
    assert not asyncio.run(seen_commits.all_recorded([watcher], "data", [b.id]))


def test_a_batch_is_skipped_only_when_every_watched_asset_has_every_commit() -> None:
    b, c = _commit("b"), _commit("c")
    both = MemoryAccessor({seen_commits.commit_key("data", x.id): {"source": "webhook"} for x in (b, c)})
    one = MemoryAccessor({seen_commits.commit_key("data", b.id): {"source": "webhook"}})
    assert asyncio.run(seen_commits.all_recorded([both], "data", [b.id, c.id]))
    assert not asyncio.run(seen_commits.all_recorded([both, one], "data", [b.id, c.id]))
    assert not asyncio.run(seen_commits.all_recorded([both], "other-repo", [b.id]))
    assert not asyncio.run(seen_commits.all_recorded([], "data", [b.id]))


def test_keys_are_per_repository_and_commit_and_fit_the_store() -> None:
    assert seen_commits.commit_key("data", "a" * 64) == f"mlrepo.commit.data.{'a' * 64}"
    assert seen_commits.commit_key("data", "a" * 64) != seen_commits.commit_key("data2", "a" * 64)
    long_ref = "r" * 600
    assert len(seen_commits.commit_key("data", long_ref)) <= 512
    assert seen_commits.commit_key("data", long_ref) != seen_commits.commit_key("data", long_ref + "x")
