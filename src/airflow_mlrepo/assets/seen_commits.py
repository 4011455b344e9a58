"""One asset event per (asset, repository, commit), whichever of the webhook and the watcher sees it first.

An asset may be fed by both the lakeFS webhook receiver (push, in the api-server) and an
``AssetWatcher`` with :class:`~airflow_mlrepo.triggers.lakefs.LakeFSCommitEventTrigger` (pull, in
the triggerer). Both mark each commit they turn into an asset event under one key of the asset's
**asset state store** (Airflow 3.3+; primary key ``(asset_id, key)``, so every check is one indexed
lookup): ``mlrepo.commit.<repository>.<commit id>``. The receiver checks and marks under a row lock
on the asset, in the transaction that records the event; the watcher checks before it fires and
marks before it yields, so a commit the other side already recorded does not fire again. The
watcher does not skip a commit for its own mark: that mark is written before its event is stored, so
only the receiver's marks prove an event exists (see :func:`all_recorded`).

The one window left open: a watcher that checked (nothing there) just before the receiver's
transaction committed, and fires just after. Both then record the commit (the runs are idempotent:
they pin the same commit). Marks older than :data:`MARK_RETENTION` are pruned by the receiver.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

KEY_PREFIX = "mlrepo.commit."
#: Longest key kept readable (the store's keys hold 512 characters).
_MAX_READABLE_KEY = 400
#: How long a mark is kept (a commit delivered again after this long fires again).
MARK_RETENTION = timedelta(days=30)
#: The ``source`` of the marks the watcher writes (the triggers' ``SOURCE_WATCHER``).
WATCHER_SOURCE = "watcher"
#: A watcher batch checks and marks at most this many of its newest commits.
MAX_CHECKED_COMMITS = 100


def commit_key(repository: str, commit_id: str) -> str:
    """The asset state store key marking ``commit_id`` of ``repository`` as recorded."""
    key = f"{KEY_PREFIX}{repository}.{commit_id}"
    if len(key) <= _MAX_READABLE_KEY:
        return key
    digest = hashlib.sha256(f"{repository}\0{commit_id}".encode()).hexdigest()
    return f"{KEY_PREFIX}{repository[:63]}.sha256-{digest}"


def mark_value(source: str, asset_event_id: int | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"source": source, "marked_at": time.time()}
    if asset_event_id is not None:
        value["asset_event_id"] = asset_event_id
    return value


# ------------------------------------------------------------------ receiver side (metadata DB)


def recorded_mark(session: Session, asset_id: int, repository: str, commit_id: str) -> dict[str, Any] | None:
    """The mark of a commit on an asset, if either side recorded it (one primary-key lookup)."""
    from airflow.state import AssetScope, get_state_backend

    raw = get_state_backend().get(AssetScope(asset_id=asset_id), commit_key(repository, commit_id), session=session)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"source": "unknown"}
    return value if isinstance(value, dict) else {"source": "unknown"}


def mark_recorded(
    session: Session, asset_id: int, repository: str, commit_id: str, *, source: str, asset_event_id: int
) -> None:
    """Mark a commit recorded on an asset, in the caller's transaction."""
    from airflow.state import AssetScope, get_state_backend

    backend = get_state_backend()
    scope = AssetScope(asset_id=asset_id)
    value = json.dumps(mark_value(source, asset_event_id))
    key = commit_key(repository, commit_id)
    setter = getattr(backend, "set_asset_state_store", None)
    if setter is not None:
        from airflow._shared.state import AssetStateStoreWriterKind

        setter(scope, key, value, kind=AssetStateStoreWriterKind.API, session=session)
    else:
        backend.set(scope, key, value, session=session)


def prune_marks(session: Session, asset_id: int) -> int:
    """Delete this asset's marks older than :data:`MARK_RETENTION`; returns how many."""
    from airflow.models.asset_state_store import AssetStateStoreModel
    from sqlalchemy import delete

    result = session.execute(
        delete(AssetStateStoreModel).where(
            AssetStateStoreModel.asset_id == asset_id,
            AssetStateStoreModel.key.startswith(KEY_PREFIX),
            AssetStateStoreModel.updated_at < datetime.now(timezone.utc) - MARK_RETENTION,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------------ watcher side (async)


def _mark_source(value: Any) -> str | None:
    """The ``source`` of a stored mark (the store hands back JSON text or the decoded value)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return "unknown"
    return str(value.get("source", "unknown")) if isinstance(value, dict) else "unknown"


async def all_recorded(accessors: Sequence[Any], repository: str, commit_ids: Sequence[str]) -> bool:
    """Whether every watched asset already has a *stored* event for every one of ``commit_ids``.

    Only a mark made by another source counts. The receiver marks in the transaction that stores
    its event, so its mark proves the event exists. The watcher's own mark does not: it is written
    before the event leaves the trigger, and a triggerer that dies before the event is stored comes
    back with the old watermark and must fire those commits again (at least once, never lost).
    """
    if not accessors or not commit_ids or len(commit_ids) > MAX_CHECKED_COMMITS:
        return False
    for accessor in accessors:
        for commit_id in commit_ids:
            source = _mark_source(await accessor.aget(commit_key(repository, commit_id)))
            if source is None or source == WATCHER_SOURCE:
                return False
    return True


async def mark_all(accessors: Sequence[Any], repository: str, commit_ids: Sequence[str], *, source: str) -> None:
    """Mark the newest :data:`MAX_CHECKED_COMMITS` of ``commit_ids`` recorded on every watched asset."""
    for accessor in accessors:
        for commit_id in list(commit_ids)[-MAX_CHECKED_COMMITS:]:
            await accessor.aset(commit_key(repository, commit_id), mark_value(source))


__all__ = [
    "KEY_PREFIX",
    "MARK_RETENTION",
    "all_recorded",
    "commit_key",
    "mark_all",
    "mark_recorded",
    "prune_marks",
    "recorded_mark",
]
