"""Asynchronous commit detection on a lakeFS branch, for deferrable sensors and event-driven DAGs.

Two triggers share one polling core, :class:`~airflow_mlrepo.hooks.lakefs.async_hook.LakeFSBranchPoller`
on :class:`~airflow_mlrepo.hooks.lakefs.LakeFSAsyncHook`:

* :class:`LakeFSCommitTrigger` (a :class:`~airflow.triggers.base.BaseTrigger`) is what
  :class:`~airflow_mlrepo.sensors.lakefs.LakeFSCommitSensor` defers to: it waits for commits newer
  than a baseline commit and yields **one** event with all of them, then ends.
* :class:`LakeFSCommitEventTrigger` (a :class:`~airflow.triggers.base.BaseEventTrigger`) is for
  ``AssetWatcher``: it never ends, fires one event per new batch of commits, and keeps its
  watermark (the last branch head it has dealt with) in Airflow's asset state store so that a
  triggerer restart neither re-fires old commits nor misses new ones. It runs in Airflow's
  shared-stream ack mode (:class:`WatcherStream`): the watermark moves past a batch only once the
  triggerer has confirmed that the batch's event is stored in the metadata database.

Cost per poll interval and watched branch: **one** lakeFS request (``GET .../branches/{branch}``)
while nothing changes. Only when the head moved is the log walked
(:func:`airflow_mlrepo.changes.matching_commits`, a few requests, in a worker thread), and only up
to the head just read, so a commit made during the walk is left for the next poll rather than
half-seen.

The head is read by the async hook with ``httpx`` on one ``AsyncClient`` per event loop and lakeFS
endpoint, shared by every trigger of the process: a thousand waiting triggers hold no lakeFS SDK
client and one connection pool. Triggers never raise into the triggerer: an unreachable lakeFS is
logged and retried with exponential backoff; anything else ends a sensor trigger with an error
event ``{"status": "error", "error_type": ..., "message": ...}`` and is logged and retried by a
watcher.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer

from airflow_mlrepo.assets import seen_commits
from airflow_mlrepo.changes import CommitFilter
from airflow_mlrepo.exceptions import (
    CommitNotAncestorError,
    LakeFSBadInputError,
    LakeFSError,
    LakeFSUnavailableError,
)
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from airflow_mlrepo.hooks.lakefs.async_hook import LakeFSBranchPoller
from airflow_mlrepo.locations import validate_ref
from airflow_mlrepo.pinning import ASSET_EVENT_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

#: Default seconds between two reads of the branch head.
DEFAULT_POLL_INTERVAL = 60.0
#: Longest wait between two attempts while lakeFS is unreachable (the backoff cap).
MAX_BACKOFF_SECONDS = 300.0
#: Prefix of the asset state store key that holds a watcher's watermark.
WATERMARK_KEY_PREFIX = "airflow_mlrepo.lakefs_watermark"
SOURCE_WATCHER = seen_commits.WATCHER_SOURCE

_TRIGGER_MODULE = __name__


def seconds_to_next_tick(poll_interval: float) -> float:
    """Seconds until the next multiple of ``poll_interval`` on the wall clock.

    Every trigger polls on the same epoch-aligned ticks, so the triggers of one process that watch
    the same branch ask for its head at the same moment and share one request (see
    :class:`~airflow_mlrepo.hooks.lakefs.LakeFSAsyncHook`).
    """
    remainder = time.time() % poll_interval
    return poll_interval - remainder if remainder > 1e-3 else poll_interval


def backoff_seconds(poll_interval: float, failures: int) -> float:
    """Wait before the next attempt after ``failures`` consecutive failed ones (exponential, capped)."""
    cap = max(poll_interval, MAX_BACKOFF_SECONDS)
    return float(min(cap, poll_interval * (2 ** max(0, failures - 1))))


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


def _error_event(exc: BaseException, **facts: Any) -> TriggerEvent:
    return _event(
        {"status": "error", "error_type": type(exc).__name__, "message": str(exc) or type(exc).__name__, **facts}
    )


class _CommitTriggerBase:
    """Arguments and validation common to both triggers."""

    def _init_common(
        self,
        *,
        repository: str,
        branch: str,
        lakefs_conn_id: str,
        prefixes: Sequence[str] | None,
        objects: Sequence[str] | None,
        metadata: Mapping[str, str] | None,
        first_parent: bool,
        poll_interval: float,
    ) -> None:
        self.repository = repository
        self.branch = branch
        self.lakefs_conn_id = lakefs_conn_id
        self.prefixes = list(prefixes or [])
        self.objects = list(objects or [])
        self.metadata = dict(metadata or {})
        self.first_parent = bool(first_parent)
        self.poll_interval = float(poll_interval)

    def _common_kwargs(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "branch": self.branch,
            "lakefs_conn_id": self.lakefs_conn_id,
            "prefixes": list(self.prefixes),
            "objects": list(self.objects),
            "metadata": dict(self.metadata),
            "first_parent": self.first_parent,
            "poll_interval": self.poll_interval,
        }

    def _poller(self) -> LakeFSBranchPoller:
        if self.poll_interval <= 0:
            raise LakeFSBadInputError(f"poll_interval must be positive, got {self.poll_interval}")
        commit_filter = CommitFilter.build(self.prefixes, self.objects, self.metadata, self.first_parent)
        return LakeFSBranchPoller(self.lakefs_conn_id, self.repository, self.branch, commit_filter)

    @property
    def _head_max_age(self) -> float:
        """How old a head read shared with other triggers on the same tick may be."""
        return min(1.0, self.poll_interval / 4)

    @property
    def _where(self) -> str:
        return f"branch '{self.branch}' of lakeFS repository '{self.repository}' (connection '{self.lakefs_conn_id}')"


class LakeFSCommitTrigger(_CommitTriggerBase, BaseTrigger):
    """Wait for commits on a lakeFS branch newer than ``baseline_commit``; yield one event with all of them.

    Success event: ``{"status": "success", "repository", "branch", "baseline", "head",
    "commits": [LakeFSCommit.to_dict(), ...]}``, oldest first, only the commits that pass the
    filters; ``head`` is the branch head that contains them. Error event: ``{"status": "error",
    "error_type", "message", "repository", "branch"}`` (reset branch, missing repository or
    branch, rejected credentials...). While lakeFS is unreachable the trigger keeps waiting,
    logging each failure and backing off up to :data:`MAX_BACKOFF_SECONDS`.

    :param repository: lakeFS repository.
    :param branch: branch to watch.
    :param baseline_commit: full commit id; only commits after it count.
    :param prefixes: only commits that change something under one of these path prefixes.
    :param objects: only commits that change one of these exact object paths.
    :param metadata: only commits whose metadata has these key/values.
    :param first_parent: only the branch's own first-parent history (merged-in commits are skipped).
    :param poll_interval: seconds between two reads of the branch head.
    :param lakefs_conn_id: Airflow connection of type ``lakefs``.
    """

    def __init__(
        self,
        *,
        repository: str,
        branch: str,
        baseline_commit: str,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        first_parent: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._init_common(
            repository=repository,
            branch=branch,
            lakefs_conn_id=lakefs_conn_id,
            prefixes=prefixes,
            objects=objects,
            metadata=metadata,
            first_parent=first_parent,
            poll_interval=poll_interval,
        )
        self.baseline_commit = baseline_commit

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{_TRIGGER_MODULE}.LakeFSCommitTrigger",
            {**self._common_kwargs(), "baseline_commit": self.baseline_commit},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        facts = {"repository": self.repository, "branch": self.branch, "baseline": self.baseline_commit}
        try:
            poller = self._poller()
            validate_ref(self.baseline_commit)
        except Exception as exc:
            yield _error_event(exc, **facts)
            return
        self.log.info("Waiting for commits after %s on %s", self.baseline_commit, self._where)
        # The window moves forward as the wait goes on: each walk starts at the last head checked
        # without a match, so a long wait on a busy branch never walks more than one poll's commits.
        scanned_up_to = self.baseline_commit
        failures = 0
        while True:
            try:
                head = await poller.branch_head(self._head_max_age)
                if head != scanned_up_to:
                    try:
                        commits = await poller.new_commits(scanned_up_to, head)
                    except CommitNotAncestorError:
                        if scanned_up_to == self.baseline_commit:
                            raise
                        commits = await poller.new_commits(self.baseline_commit, head)
                    if commits:
                        self.log.info("%d new commit(s) on %s, newest %s", len(commits), self._where, commits[-1].id)
                        yield _event(
                            {
                                "status": "success",
                                **facts,
                                "head": head,
                                "commits": [commit.to_dict() for commit in commits],
                            }
                        )
                        return
                    self.log.info("Head of %s moved to %s; no commit matches the filters yet", self._where, head)
                    scanned_up_to = head
                if failures:
                    self.log.info("lakeFS is reachable again for %s", self._where)
                failures = 0
                await asyncio.sleep(seconds_to_next_tick(self.poll_interval))
            except LakeFSUnavailableError as exc:
                failures += 1
                delay = backoff_seconds(self.poll_interval, failures)
                self.log.warning(
                    "lakeFS unreachable (attempt %d), still waiting; next try in %.0fs: %s", failures, delay, exc
                )
                await asyncio.sleep(delay)
            except Exception as exc:
                self.log.error("Stopped waiting for commits on %s: %s", self._where, exc)
                yield _error_event(exc, **facts)
                return


class WatermarkStore:
    """Where a watcher keeps the last branch head it dealt with, across triggerer restarts.

    Airflow 3.3+ injects ``asset_state_store`` into every ``BaseEventTrigger`` that watches assets
    (``AssetStateStoreAccessors`` for the watched assets); the watermark is one key there, per
    watched asset. On older Airflow there is no such store: the watermark lives in memory only, and
    after a triggerer restart the watcher starts again from the branch head at that time.
    """

    def __init__(self, accessors: Any, key: str) -> None:
        self._key = key
        self._targets: list[Any] = self._accessor_list(accessors)

    @staticmethod
    def _accessor_list(accessors: Any) -> list[Any]:
        if accessors is None:
            return []
        # One trigger row serves every asset whose watcher has the same trigger class and kwargs,
        # so there may be several accessors; AssetStateStoreAccessors has no public iteration.
        found = [*getattr(accessors, "_by_name", {}).values(), *getattr(accessors, "_by_uri", {}).values()]
        return found or [accessors]

    @property
    def persistent(self) -> bool:
        return bool(self._targets)

    @property
    def targets(self) -> list[Any]:
        """The asset state store accessors of the watched assets (empty before Airflow 3.3)."""
        return list(self._targets)

    async def load(self) -> dict[str, Any] | None:
        """The recorded watermark (oldest of the watched assets' ones), or None."""
        values = []
        for target in self._targets:
            value = await target.aget(self._key)
            if isinstance(value, Mapping) and isinstance(value.get("commit_id"), str):
                values.append(dict(value))
        if not values:
            return None
        return min(values, key=lambda value: float(value.get("updated_at") or 0))

    async def save(self, value: dict[str, Any]) -> None:
        for target in self._targets:
            await target.aset(self._key, value)


@dataclass(frozen=True)
class HeadMove:
    """One raw event of a watcher's stream: the branch head moved from ``previous`` to ``head``.

    ``commits`` are the matching commits in between, oldest first; ``reset`` says the branch was
    reset or force-moved (``previous`` is not in ``head``'s history) and the watched paths differ.
    """

    previous: str
    head: str
    commits: tuple[LakeFSCommit, ...] = ()
    reset: bool = False


#: The live watcher behind each ack-mode stream of this process, by its stream key. The triggerer
#: builds a stream's producer from the trigger's kwargs alone (a classmethod), while the asset state
#: store that holds the watermark is on the trigger instance; this is how the producer finds it.
_ACK_MODE_WATCHERS: dict[Hashable, LakeFSCommitEventTrigger] = {}


def _stream_key(kwargs: Mapping[str, Any]) -> tuple[str, str]:
    return (f"{_TRIGGER_MODULE}.LakeFSCommitEventTrigger", json.dumps(kwargs, sort_keys=True, default=str))


class WatcherStream(SharedStreamProducer):
    """The producer half of a watcher in Airflow's shared-stream **ack mode**.

    :meth:`open_stream` reads the watermark, polls the branch head and yields one
    :class:`HeadMove` per move (``broker_payload``: the new head). The triggerer's
    ``SharedStreamManager`` calls :meth:`advance` only once the trigger event derived from a move
    (if any) is confirmed stored in the metadata database; that is where the watermark is recorded.
    So a triggerer that dies before its event is stored comes back with the old watermark and
    fires the batch again, whatever the timing.
    """

    def __init__(self, trigger: LakeFSCommitEventTrigger, *, acknowledged: bool) -> None:
        self.trigger = trigger
        self.acknowledged = acknowledged  # advance() follows the triggerer's persistence confirmations
        self.store = WatermarkStore(trigger.asset_state_store, trigger.watermark_key)
        self.recorded: str | None = None  # the watermark in the store
        self._rewind = False

    @property
    def log(self) -> Any:
        return self.trigger.log

    async def _start(self, poller: LakeFSBranchPoller) -> str:
        trigger, store = self.trigger, self.store
        recorded = await trigger._retrying("read the watermark", store.load) if store.persistent else None
        if recorded and recorded.get("repository") == trigger.repository and recorded.get("branch") == trigger.branch:
            watermark = str(recorded["commit_id"])
            self.log.info("Resuming %s after watermark %s, %s", trigger._where, watermark, self._mode)
            return watermark
        watermark = trigger.since_commit or await trigger._retrying("read the branch head", poller.branch_head)
        if store.persistent:
            await trigger._retrying("record the watermark", lambda: store.save(trigger._watermark_value(watermark)))
        self.log.info("Watching %s from %s (watermark %s)", trigger._where, watermark, self._mode)
        return watermark

    @property
    def _mode(self) -> str:
        if not self.store.persistent:
            return "in memory only"
        if self.acknowledged:
            return "in the asset state store, moved on the triggerer's acknowledgement"
        return "in the asset state store, moved with no acknowledgement"

    async def open_stream(self) -> AsyncIterator[tuple[HeadMove, str]]:
        trigger = self.trigger
        poller = trigger._poller()
        position = self.recorded = await self._start(poller)
        failures = 0
        while True:
            if self._rewind:  # an event was never confirmed stored: detect again from the watermark
                position, self._rewind = self.recorded, False
            try:
                head = await poller.branch_head(trigger._head_max_age)
                if head != position:
                    reset = False
                    try:
                        commits = await poller.new_commits(position, head)
                    except CommitNotAncestorError as exc:
                        # The branch was reset or force-moved: its data changed without new commits.
                        reset = await poller.reset_changed_paths(position, head)
                        self.log.warning(
                            "%s; %s", exc, "firing a reset event" if reset else "the watched paths are the same"
                        )
                        commits = []
                    move = HeadMove(position, head, tuple(commits), reset)
                    position = head
                    yield move, head
                if failures:
                    self.log.info("lakeFS is reachable again for %s", trigger._where)
                failures = 0
                await asyncio.sleep(seconds_to_next_tick(trigger.poll_interval))
            except Exception as exc:
                failures += 1
                delay = backoff_seconds(trigger.poll_interval, failures)
                level = self.log.warning if isinstance(exc, LakeFSUnavailableError) else self.log.error
                level("Cannot check %s (attempt %d), retrying in %.0fs: %s", trigger._where, failures, delay, exc)
                await asyncio.sleep(delay)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Record the newest head whose event (if any) is stored; never raises (that would end the stream)."""
        settled: str | None = None
        for item in batch:
            if not item.outcome.is_clean:
                self.log.warning(
                    "The event for head %s of %s was not confirmed stored (%s): detecting it again",
                    item.broker_payload,
                    self.trigger._where,
                    item.outcome,
                )
                self._rewind = True
                break
            settled = str(item.broker_payload)
        if settled is None or settled == self.recorded:
            return
        if self.store.persistent:
            await self.trigger._retrying(
                "record the watermark", lambda: self.store.save(self.trigger._watermark_value(settled))
            )
        self.recorded = settled


class LakeFSCommitEventTrigger(_CommitTriggerBase, BaseEventTrigger):
    """Fire once per new batch of commits on a lakeFS branch: the trigger of an ``AssetWatcher``.

    .. code-block:: python

        Asset(
            "lakefs://training-data/main/data",
            watchers=[AssetWatcher(name="training-data", trigger=LakeFSCommitEventTrigger(
                repository="training-data", branch="main", prefixes=["data/"], poll_interval=30))],
        )

    Event payload (it becomes the asset event's ``extra["payload"]``)::

        {"lakefs": {"repository", "branch", "commit_id": <branch head containing the commits>,
                    "commits": [<matching ids, oldest first>], "previous_commit_id": <watermark>,
                    "source": "watcher"}}

    The watermark is the last branch head the watcher dealt with. It lives in the asset state
    store of the watched asset(s) and is read back when the trigger starts: commits made while the
    triggerer was down fire once after it is back, and commits that already fired do not fire
    again. The watcher runs in Airflow's shared-stream ack mode (:class:`WatcherStream`): the
    watermark moves past a batch only once the triggerer has confirmed that the batch's event is
    stored in the metadata database. With no watermark yet the watcher starts at ``since_commit``
    if given, else at the branch head when it first runs (history is not replayed). A reset branch
    (watermark no longer in its history) fires an event with ``"reset": true`` (``commits`` empty,
    ``previous_commit_id`` the old head) when the watched paths differ between the old and the new
    head, and the watcher carries on from the new head.

    :param since_commit: commit id to start from the first time (before any watermark exists).
    """

    def __init__(
        self,
        *,
        repository: str,
        branch: str,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        first_parent: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        since_commit: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._init_common(
            repository=repository,
            branch=branch,
            lakefs_conn_id=lakefs_conn_id,
            prefixes=prefixes,
            objects=objects,
            metadata=metadata,
            first_parent=first_parent,
            poll_interval=poll_interval,
        )
        self.since_commit = since_commit

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{_TRIGGER_MODULE}.LakeFSCommitEventTrigger",
            {**self._common_kwargs(), "since_commit": self.since_commit},
        )

    @property
    def watermark_key(self) -> str:
        """Asset state store key of this watcher's watermark (one per connection/branch/filters)."""
        commit_filter = CommitFilter.build(self.prefixes, self.objects, self.metadata, self.first_parent)
        raw = f"{self.lakefs_conn_id}\0{self.repository}\0{self.branch}\0{commit_filter.digest}"
        return f"{WATERMARK_KEY_PREFIX}.{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    def _watermark_value(self, commit_id: str) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "branch": self.branch,
            "commit_id": commit_id,
            "updated_at": time.time(),
        }

    def payload(
        self, previous: str, head: str, commits: Sequence[LakeFSCommit], *, reset: bool = False
    ) -> dict[str, Any]:
        """The event payload for one batch (see the class docstring)."""
        facts: dict[str, Any] = {
            "repository": self.repository,
            "branch": self.branch,
            "commit_id": head,
            "commits": [commit.id for commit in commits],
            "previous_commit_id": previous,
            "source": SOURCE_WATCHER,
        }
        if reset:
            facts["reset"] = True
        return {ASSET_EVENT_KEY: facts}

    async def _already_recorded(self, store: WatermarkStore, commits: Sequence[LakeFSCommit]) -> bool:
        """Whether every watched asset has an event for every commit (:mod:`~airflow_mlrepo.assets.seen_commits`)."""
        try:
            return await seen_commits.all_recorded(store.targets, self.repository, [c.id for c in commits])
        except Exception as exc:  # the check only saves a duplicate: never let it stop the watcher
            self.log.warning("Cannot check which commits of %s already have events: %s", self._where, exc)
            return False

    async def _mark_recorded(self, store: WatermarkStore, commits: Sequence[LakeFSCommit]) -> None:
        try:
            await seen_commits.mark_all(store.targets, self.repository, [c.id for c in commits], source=SOURCE_WATCHER)
        except Exception as exc:
            self.log.warning("Cannot mark the commits of %s as recorded: %s", self._where, exc)

    async def _retrying(self, what: str, action: Callable[[], Any]) -> Any:
        """Run ``action`` until it succeeds, backing off on any failure (a watcher never gives up)."""
        failures = 0
        while True:
            try:
                return await action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = backoff_seconds(self.poll_interval, failures)
                level = self.log.warning if isinstance(exc, LakeFSUnavailableError) else self.log.error
                level("Cannot %s for %s (attempt %d), retrying in %.0fs: %s", what, self._where, failures, delay, exc)
                await asyncio.sleep(delay)

    def _invalid(self) -> Exception | None:
        try:
            self._poller()
            if self.since_commit is not None:
                validate_ref(self.since_commit)
        except Exception as exc:
            return exc
        return None

    # ------------------------------------------------------------------ shared-stream ack mode

    def shared_stream_key(self) -> Hashable | None:
        """Ack mode whenever there is an asset state store to keep the watermark in (Airflow 3.3+).

        One stream per watcher (its kwargs; Airflow keeps one trigger per kwargs): the watermark is
        per filter and per watched asset, so watchers cannot share one. Without a store (a trigger
        run outside the triggerer's asset wiring) the watcher runs standalone (:meth:`run`).
        """
        if not WatermarkStore(self.asset_state_store, self.watermark_key).persistent or self._invalid():
            return None
        key = _stream_key(self.serialize()[1])
        _ACK_MODE_WATCHERS[key] = self  # the triggerer calls this right before it subscribes
        return key

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        trigger = _ACK_MODE_WATCHERS.get(_stream_key(kwargs))
        if trigger is None:  # not registered by shared_stream_key: keep the watermark in memory
            trigger = cls(**kwargs)
            trigger.log.warning("No asset state store for %s: its watermark lives in memory only", trigger._where)
        return WatcherStream(trigger, acknowledged=True)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn head moves into events: one per batch of new commits (or reset), none otherwise."""
        store = WatermarkStore(self.asset_state_store, self.watermark_key)
        try:
            async for move in shared_stream:
                if move.commits and not move.reset and await self._already_recorded(store, move.commits):
                    self.log.info(
                        "%d new commit(s) on %s up to %s already have asset events (the lakeFS webhook "
                        "recorded them): not firing again",
                        len(move.commits),
                        self._where,
                        move.head,
                    )
                elif move.commits or move.reset:
                    self.log.info("%d new commit(s) on %s up to %s", len(move.commits), self._where, move.head)
                    await self._mark_recorded(store, move.commits)
                    yield _event(self.payload(move.previous, move.head, move.commits, reset=move.reset))
        finally:
            key = _stream_key(self.serialize()[1])
            if _ACK_MODE_WATCHERS.get(key) is self:
                del _ACK_MODE_WATCHERS[key]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The standalone watcher (no shared stream: no asset state store, so no acknowledgement needed)."""
        invalid = self._invalid()
        if invalid is not None:
            # A watcher cannot fail a task; log loudly and stay idle rather than exit (an exited
            # watcher would be restarted into the same error in a tight loop).
            self.log.error("Invalid LakeFSCommitEventTrigger for %s: %s", self._where, invalid)
            while True:
                await asyncio.sleep(MAX_BACKOFF_SECONDS)
            yield  # pragma: no cover  (makes this an async generator for the type checker)
        producer = WatcherStream(self, acknowledged=False)

        async def moves() -> AsyncIterator[HeadMove]:
            async for move, head in producer.open_stream():
                yield move
                # The filter has moved past the move; there is no persistence to wait for here.
                await producer.advance([AdvanceItem(head, AdvanceOutcome(acked=1, failed=0))])

        async for event in self.filter_shared_stream(moves()):
            yield event


def trigger_error_class(error_type: str | None) -> type[LakeFSError] | None:
    """The lakeFS error class named by a trigger error event's ``error_type``, if it is one."""
    from airflow_mlrepo import exceptions

    candidate = getattr(exceptions, error_type or "", None)
    if isinstance(candidate, type) and issubclass(candidate, LakeFSError):
        return candidate
    return None


__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "CommitFilter",
    "HeadMove",
    "LakeFSBranchPoller",
    "LakeFSCommitEventTrigger",
    "LakeFSCommitTrigger",
    "WatcherStream",
    "WatermarkStore",
    "backoff_seconds",
    "trigger_error_class",
]
