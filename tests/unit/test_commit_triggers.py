"""Commit triggers without lakeFS: serialisation, filters, payloads and the watcher's watermark logic.

The watcher is driven with a scripted poller (the lakeFS boundary) and an in-memory asset state
store (the Airflow boundary), which unit tests may fake, through Airflow's own shared-stream
manager, as the triggerer runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import BaseEventTrigger
from airflow.triggers.shared_stream import SharedStreamManager

from airflow_mlrepo.changes import CommitFilter
from airflow_mlrepo.exceptions import (
    CommitNotAncestorError,
    LakeFSBadInputError,
    LakeFSNotFoundError,
    LakeFSUnavailableError,
)
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, async_hook
from airflow_mlrepo.pinning import asset_event_commits
from airflow_mlrepo.triggers import lakefs as triggers
from airflow_mlrepo.triggers.lakefs import (
    LakeFSCommitEventTrigger,
    LakeFSCommitTrigger,
    WatcherStream,
    WatermarkStore,
    backoff_seconds,
    trigger_error_class,
)

BASE = "a" * 64


def _commit(char: str, **metadata: str) -> LakeFSCommit:
    return LakeFSCommit(
        id=char * 64, parents=(), committer="me", message=f"c{char}", creation_date=1, metadata=metadata
    )


def _rebuild(trigger: Any) -> Any:
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def test_commit_trigger_serialize_round_trips() -> None:
    trigger = LakeFSCommitTrigger(
        repository="data",
        branch="main",
        baseline_commit=BASE,
        lakefs_conn_id="lakefs_prod",
        prefixes=["train/"],
        objects=["labels.csv"],
        metadata={"stage": "train"},
        first_parent=True,
        poll_interval=5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlrepo.triggers.lakefs.LakeFSCommitTrigger"
    assert kwargs == {
        "repository": "data",
        "branch": "main",
        "baseline_commit": BASE,
        "lakefs_conn_id": "lakefs_prod",
        "prefixes": ["train/"],
        "objects": ["labels.csv"],
        "metadata": {"stage": "train"},
        "first_parent": True,
        "poll_interval": 5.0,
    }
    assert _rebuild(trigger).serialize() == (classpath, kwargs)


def test_event_trigger_serialize_round_trips_and_hashes_stably() -> None:
    trigger = LakeFSCommitEventTrigger(repository="data", branch="main", prefixes=["a/"], since_commit=BASE)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlrepo.triggers.lakefs.LakeFSCommitEventTrigger"
    rebuilt = _rebuild(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert isinstance(rebuilt, BaseEventTrigger)
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*rebuilt.serialize())
    other = LakeFSCommitEventTrigger(repository="data", branch="main", prefixes=["b/"], since_commit=BASE)
    assert BaseEventTrigger.hash(classpath, kwargs) != BaseEventTrigger.hash(*other.serialize())


def test_commit_filter_validates_and_matches_metadata() -> None:
    commit_filter = CommitFilter.build(["train/"], None, {"stage": "train"})
    assert commit_filter.matches_metadata(_commit("b", stage="train", other="x"))
    assert not commit_filter.matches_metadata(_commit("b", stage="dev"))
    assert not commit_filter.matches_metadata(_commit("b"))
    with pytest.raises(LakeFSBadInputError, match="not a single string"):
        CommitFilter.build("train/")  # type: ignore[arg-type]
    with pytest.raises(LakeFSBadInputError, match="strings to strings"):
        CommitFilter.build(metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no leading '/'"):
        CommitFilter.build(["/abs"])
    assert CommitFilter.build(["a/"]).digest != CommitFilter.build(["b/"]).digest
    assert CommitFilter.build(["a/"]).digest == CommitFilter.build(["a/"]).digest


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(10, n) for n in (1, 2, 3)] == [10, 20, 40]
    assert backoff_seconds(10, 20) == triggers.MAX_BACKOFF_SECONDS
    assert backoff_seconds(600, 5) == 600  # never below the poll interval


def test_trigger_error_class_maps_only_lakefs_errors() -> None:
    assert trigger_error_class("CommitNotAncestorError") is CommitNotAncestorError
    assert trigger_error_class("LakeFSNotFoundError") is LakeFSNotFoundError
    assert trigger_error_class("ValueError") is None
    assert trigger_error_class("NoNewCommitsError") is None
    assert trigger_error_class(None) is None


def test_invalid_arguments_end_the_sensor_trigger_with_an_error_event() -> None:
    trigger = LakeFSCommitTrigger(repository="Bad_Repo", branch="main", baseline_commit=BASE)

    async def first() -> Any:
        return await trigger.run().__anext__()

    payload = asyncio.run(first()).payload
    assert payload["status"] == "error"
    assert payload["error_type"] == "InvalidLakeFSLocationError"
    assert "Bad_Repo" in payload["message"]


def test_watcher_payload_is_what_pinning_reads() -> None:
    trigger = LakeFSCommitEventTrigger(repository="data", branch="main")
    payload = trigger.payload(BASE, "c" * 64, [_commit("b"), _commit("c")])
    assert payload == {
        "lakefs": {
            "repository": "data",
            "branch": "main",
            "commit_id": "c" * 64,
            "commits": ["b" * 64, "c" * 64],
            "previous_commit_id": BASE,
            "source": "watcher",
        }
    }
    # The triggerer stores it as extra={"from_trigger": True, "payload": payload}.
    event = SimpleNamespace(extra={"from_trigger": True, "payload": payload}, timestamp="2026-01-01")
    context = {"triggering_asset_events": {"lakefs://data/main": [event]}}
    assert asset_event_commits(context, "data", "main") == ["c" * 64]
    assert asset_event_commits(context, "data", "other") == []


def test_watermark_key_depends_on_branch_and_filters() -> None:
    key = LakeFSCommitEventTrigger(repository="data", branch="main").watermark_key
    assert key.startswith("airflow_mlrepo.lakefs_watermark.")
    assert key == LakeFSCommitEventTrigger(repository="data", branch="main", poll_interval=1).watermark_key
    assert key != LakeFSCommitEventTrigger(repository="data", branch="dev").watermark_key
    assert key != LakeFSCommitEventTrigger(repository="data", branch="main", prefixes=["x/"]).watermark_key


class MemoryAccessor:
    """An in-memory stand-in for one asset's ``AssetStateStoreAccessor`` (aget/aset)."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.writes: list[tuple[str, Any]] = []

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes.append((key, value))


def test_watermark_store_reads_the_oldest_and_writes_every_watched_asset() -> None:
    first = MemoryAccessor({"k": {"commit_id": "new", "updated_at": 20}})
    second = MemoryAccessor({"k": {"commit_id": "old", "updated_at": 10}})
    accessors = SimpleNamespace(_by_name={"a": first, "b": second}, _by_uri={})
    store = WatermarkStore(accessors, "k")
    assert store.persistent
    assert asyncio.run(store.load()) == {"commit_id": "old", "updated_at": 10}
    asyncio.run(store.save({"commit_id": "x"}))
    assert first.values["k"] == second.values["k"] == {"commit_id": "x"}
    assert not WatermarkStore(None, "k").persistent


class ScriptedPoller:
    """The lakeFS side of a watcher: heads in order, and the commits between two heads."""

    def __init__(self, heads: list[str], history: dict[tuple[str, str], list[LakeFSCommit]]) -> None:
        self._heads: Iterator[str] = iter(heads)
        self._last = heads[-1]
        self.history = history
        self.walks: list[tuple[str, str]] = []

    async def branch_head(self, max_age: float = 0.0) -> str:
        head = next(self._heads, self._last)
        if head == "DOWN":
            raise LakeFSUnavailableError("lakeFS at http://x is unreachable")
        return head

    async def new_commits(self, baseline: str, head: str) -> list[LakeFSCommit]:
        self.walks.append((baseline, head))
        if (baseline, head) not in self.history:
            raise CommitNotAncestorError(f"{baseline} is not in the history of {head}")
        return self.history[(baseline, head)]

    async def reset_changed_paths(self, before: str, head: str) -> bool:
        return True


def _drive_watcher(
    monkeypatch: pytest.MonkeyPatch,
    poller: ScriptedPoller,
    accessor: MemoryAccessor | None,
    seconds: float,
    confirm_after: float | None = 0.0,
    confirmed_at: list[float] | None = None,
) -> tuple[list[dict[str, Any]], LakeFSCommitEventTrigger]:
    """Run the watcher as the 3.3 triggerer's ``run_trigger`` does, for ``seconds``.

    With a shared stream key: subscribe through Airflow's own ``SharedStreamManager`` (ack mode),
    bind each event and confirm it stored ``confirm_after`` seconds later (None: never), as the
    supervisor does once the event is in the metadata database. Without one: ``run()``.
    """
    trigger = LakeFSCommitEventTrigger(repository="data", branch="main", poll_interval=0.01)
    trigger.asset_state_store = accessor  # what the 3.3 triggerer injects
    monkeypatch.setattr(trigger, "_poller", lambda: poller)
    events: list[dict[str, Any]] = []

    async def run() -> None:
        manager = SharedStreamManager()
        key = trigger.shared_stream_key()
        stream = (
            trigger.run()
            if key is None
            else trigger.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=trigger, key=key))
        )
        loop = asyncio.get_running_loop()

        def confirm(seq: int) -> None:
            if confirmed_at is not None:
                confirmed_at.append(time.time())
            manager.confirm_persisted([seq])

        async def collect() -> None:
            try:
                async for event in stream:
                    seq = None if key is None else manager.bind_pending_event(trigger_id=1, key=key)
                    events.append(event.payload["lakefs"])
                    if seq is not None and confirm_after is not None:
                        loop.call_later(confirm_after, confirm, seq)
            finally:
                if key is not None:
                    await manager.unsubscribe(1, key)

        task = asyncio.ensure_future(collect())
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    return events, trigger


def test_watcher_starts_at_the_head_and_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryAccessor()
    poller = ScriptedPoller(["H1"], {("H1", "H1"): []})
    events, trigger = _drive_watcher(monkeypatch, poller, store, 0.2)
    assert events == []
    assert store.values[trigger.watermark_key]["commit_id"] == "H1"


def test_watcher_fires_once_per_batch_and_records_the_watermark_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryAccessor()
    b, c = _commit("b"), _commit("c")
    poller = ScriptedPoller(["H1", "H1", "H2", "H2", "DOWN", "H2", "H3"], {("H1", "H2"): [b], ("H2", "H3"): [c]})
    events, trigger = _drive_watcher(monkeypatch, poller, store, 1.0)
    assert [e["commits"] for e in events] == [[b.id], [c.id]]
    assert [e["commit_id"] for e in events] == ["H2", "H3"]
    assert [e["previous_commit_id"] for e in events] == ["H1", "H2"]
    assert poller.walks == [("H1", "H2"), ("H2", "H3")]  # the log is walked only when the head moved
    recorded = [value["commit_id"] for key, value in store.writes if key == trigger.watermark_key]
    assert recorded == ["H1", "H2", "H3"]


def test_watcher_records_the_watermark_only_once_its_event_is_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryAccessor()
    b = _commit("b")
    poller = ScriptedPoller(["H1", "H2"], {("H1", "H2"): [b]})
    events, trigger = _drive_watcher(monkeypatch, poller, store, 0.5, confirm_after=None)
    assert [e["commits"] for e in events] == [[b.id]]
    # The event was never confirmed stored: the watermark stays at H1, so a restart re-detects H2.
    assert store.values[trigger.watermark_key]["commit_id"] == "H1"


def test_the_watermark_follows_the_stored_event_not_a_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryAccessor()
    b = _commit("b")
    poller = ScriptedPoller(["H1", "H2"], {("H1", "H2"): [b]})
    confirmed_at: list[float] = []
    events, trigger = _drive_watcher(monkeypatch, poller, store, 1.0, confirm_after=0.4, confirmed_at=confirmed_at)
    assert [e["commits"] for e in events] == [[b.id]]
    recorded = [value for key, value in store.writes if key == trigger.watermark_key]
    assert [value["commit_id"] for value in recorded] == ["H1", "H2"]
    (stored,) = confirmed_at
    # Recorded once the event was stored, not before it and not a fixed delay later.
    assert stored <= recorded[-1]["updated_at"] < stored + 0.3


def test_the_triggerer_runs_a_watcher_with_a_state_store_in_ack_mode() -> None:
    trigger = LakeFSCommitEventTrigger(repository="data", branch="main")
    assert trigger.shared_stream_key() is None  # no asset state store: standalone run(), watermark in memory
    trigger.asset_state_store = MemoryAccessor()
    key = trigger.shared_stream_key()
    assert key is not None
    producer = LakeFSCommitEventTrigger.create_shared_stream_producer(trigger.serialize()[1])
    assert isinstance(producer, WatcherStream)
    assert producer.trigger is trigger  # so advance() writes the watched assets' store
    assert producer.acknowledged
    invalid = LakeFSCommitEventTrigger(repository="data", branch="main", poll_interval=0)
    invalid.asset_state_store = MemoryAccessor()
    assert invalid.shared_stream_key() is None  # run() logs the error and idles


def test_watcher_fires_on_a_reset_branch_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryAccessor()
    c = _commit("c")
    poller = ScriptedPoller(["H1", "R1", "R2"], {("R1", "R2"): [c]})  # H1 is not in R1's history
    events, trigger = _drive_watcher(monkeypatch, poller, store, 0.3)
    assert [e["commits"] for e in events] == [[], [c.id]]
    assert [e["previous_commit_id"] for e in events] == ["H1", "R1"]
    assert [e["commit_id"] for e in events] == ["R1", "R2"]
    assert [e.get("reset", False) for e in events] == [True, False]
    assert store.values[trigger.watermark_key]["commit_id"] == "R2"


def test_watcher_resumes_after_its_watermark_without_refiring(monkeypatch: pytest.MonkeyPatch) -> None:
    key = LakeFSCommitEventTrigger(repository="data", branch="main").watermark_key
    store = MemoryAccessor({key: {"repository": "data", "branch": "main", "commit_id": "H2", "updated_at": 1}})
    c = _commit("c")
    # Restarted while H3 was committed: fires for H3 only, H2's commits are not fired again.
    poller = ScriptedPoller(["H3"], {("H2", "H3"): [c], ("H1", "H3"): [_commit("b"), c]})
    events, _ = _drive_watcher(monkeypatch, poller, store, 0.3)
    assert [e["commits"] for e in events] == [[c.id]]
    assert poller.walks == [("H2", "H3")]


def test_watcher_does_not_fire_for_commits_outside_its_filters_but_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryAccessor()
    poller = ScriptedPoller(["H1", "H2"], {("H1", "H2"): []})
    events, trigger = _drive_watcher(monkeypatch, poller, store, 0.3)
    assert events == []
    assert store.values[trigger.watermark_key]["commit_id"] == "H2"


def test_watcher_without_state_store_keeps_the_watermark_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    b = _commit("b")
    poller = ScriptedPoller(["H1", "H2"], {("H1", "H2"): [b]})
    events, _ = _drive_watcher(monkeypatch, poller, None, 0.3)
    assert [e["commits"] for e in events] == [[b.id]]


def test_head_reads_of_one_branch_are_coalesced_and_errors_are_not_cached() -> None:
    reads = async_hook._CoalescedHeadReads()
    fetches: list[str] = []

    async def fetch() -> str:
        fetches.append("x")
        await asyncio.sleep(0.05)
        return f"head-{len(fetches)}"

    async def failing() -> str:
        fetches.append("fail")
        raise LakeFSUnavailableError("down")

    async def scenario() -> None:
        key = ("http://lakefs", "AKIA", "data", "main")
        results = await asyncio.gather(*(reads.read(key, fetch, max_age=0.5) for _ in range(100)))
        assert set(results) == {"head-1"}
        assert await reads.read(key, fetch, max_age=0.5) == "head-1"  # recent enough: no request
        assert await reads.read(key, fetch, max_age=0.0) == "head-2"  # too old for this caller
        other = ("http://lakefs", "AKIA", "data", "dev")
        with pytest.raises(LakeFSUnavailableError):
            await reads.read(other, failing, max_age=10)
        with pytest.raises(LakeFSUnavailableError):
            await reads.read(other, failing, max_age=10)

    asyncio.run(scenario())
    assert fetches == ["x", "x", "fail", "fail"]


def test_polls_are_aligned_on_wall_clock_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triggers.time, "time", lambda: 1000.0 + 3.25)
    assert triggers.seconds_to_next_tick(5.0) == pytest.approx(1.75)
    monkeypatch.setattr(triggers.time, "time", lambda: 1000.0)
    assert triggers.seconds_to_next_tick(5.0) == 5.0
