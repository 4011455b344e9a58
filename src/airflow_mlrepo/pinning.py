"""Pinning: bind a task's lakeFS inputs to immutable commit ids, deterministically (DESIGN §3).

Rules, in order, for an input declared as ``lakefs://repo/<ref>/path``:

1. ``<ref>`` is a commit id, a tag or a ref expression (anything but a plain existing branch):
   it is resolved once → rule ``ref``.
2. The run was triggered by asset events for this repository and branch: the newest commit id
   carried by those events → rule ``asset_event``. The events stay linked to the run across
   clears, so a cleared run reads the same commit.
3. An upstream :class:`~airflow_mlrepo.sensors.lakefs.LakeFSCommitSensor` of the task detected
   commits on this repository and branch: the branch head it found them in → rule ``sensor``. The
   sensor records its answer in its task state store (never expiring) and a cleared sensor
   replays it, so a cleared run pins the very same commit.
4. Otherwise the branch head **as of** the run's data interval end (scheduled and backfilled runs)
   or its ``run_after`` (manual and asset runs without an interval) → rule ``as_of``. Both are
   stable attributes of the run, so retries, clears and backfills resolve the same commit.

Pins are never kept in XCom (XComs are wiped when a cleared task starts again): they are
recomputed from the run. A branch that was reset or force-moved under a pin is detected:
an asset-event commit that is no longer in the branch's history raises
:class:`CommitNotAncestorError`, and so does an ``as_of`` pin that differs from the one the
first attempt of this task recorded in Airflow's task state store (Airflow 3.3+).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import CommitNotAncestorError, LakeFSNotFoundError
from airflow_mlrepo.locations import BRANCH_RE, LakeFSLocation, is_commit_id

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

RULE_REF = "ref"
RULE_ASSET_EVENT = "asset_event"
RULE_AS_OF = "as_of"
RULE_LATEST = "latest"
RULE_SENSOR = "sensor"
#: XCom key under which a commit sensor hands over what it detected (``Detection.to_dict()``).
DETECTION_XCOM_KEY = "mlrepo_detected"

#: Key under which lakeFS commit facts travel in asset event extras (watcher payload and webhook).
ASSET_EVENT_KEY = "lakefs"
_STATE_STORE_KEY = "mlrepo_pins"


@dataclass(frozen=True)
class PinnedInput:
    """One input bound to a commit: where it was declared, which commit, and by which rule."""

    name: str
    source: LakeFSLocation
    commit_id: str
    rule: str
    as_of: str | None = None

    @property
    def location(self) -> LakeFSLocation:
        """The pinned location: the declared repository and path at the commit id."""
        return self.source.with_ref(self.commit_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.location.uri,
            "repository": self.source.repository,
            "commit_id": self.commit_id,
            "path": self.source.path,
            "source_ref": self.source.ref,
            "rule": self.rule,
            "as_of": self.as_of,
        }


@dataclass(frozen=True)
class Detection:
    """What a sensor saw: commits on a repository's branch, all contained in ``head``."""

    repository: str
    branch: str
    head: str
    commits: tuple[str, ...]
    source: str = "sensor"
    task_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "branch": self.branch,
            "head": self.head,
            "commits": list(self.commits),
            "source": self.source,
            "task_id": self.task_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Detection | None:
        try:
            return cls(
                repository=str(data["repository"]),
                branch=str(data["branch"]),
                head=str(data["head"]),
                commits=tuple(str(c) for c in data.get("commits") or ()),
                source=str(data.get("source") or "sensor"),
                task_id=str(data.get("task_id") or ""),
            )
        except (KeyError, TypeError):
            return None


def run_instant(context: Mapping[str, Any]) -> datetime:
    """The stable time a run stands for: its data interval end, else its ``run_after``."""
    end = context.get("data_interval_end")
    if end is not None:
        return end  # type: ignore[no-any-return]
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        logical_date = context.get("logical_date")
        if logical_date is None:
            raise ValueError("The run has neither a data interval, a run_after nor a logical date to pin to")
        return logical_date  # type: ignore[no-any-return]
    return run_after  # type: ignore[no-any-return]


def asset_event_commits(context: Mapping[str, Any], repository: str, branch: str) -> list[str]:
    """Commit ids carried by the run's triggering asset events for ``repository``/``branch``, oldest first."""
    events_by_asset = context.get("triggering_asset_events") or {}
    found: list[tuple[str, str]] = []
    for events in _values(events_by_asset):
        for event in events:
            extra = getattr(event, "extra", None) or {}
            payload = extra.get("payload", extra) if isinstance(extra, Mapping) else {}
            facts = payload.get(ASSET_EVENT_KEY) if isinstance(payload, Mapping) else None
            if not isinstance(facts, Mapping):
                continue
            if facts.get("repository") != repository or facts.get("branch") != branch:
                continue
            commit_id = facts.get("commit_id")
            if isinstance(commit_id, str) and commit_id:
                timestamp = str(getattr(event, "timestamp", ""))
                found.append((timestamp, commit_id))
    found.sort()
    return [commit for _, commit in found]


def _values(mapping: Any) -> Iterable[Any]:
    if isinstance(mapping, Mapping):
        return mapping.values()
    values = getattr(mapping, "values", None)
    return values() if callable(values) else []


def is_branch(hook: LakeFSHook, location: LakeFSLocation) -> bool:
    """Whether the location's ref names an existing branch (a moving ref that must be pinned)."""
    if is_commit_id(location.ref) or not BRANCH_RE.match(location.ref):
        return False
    return hook.branch_exists(location.repository, location.ref)


def pin_from_asset_events(
    hook: LakeFSHook, name: str, source: LakeFSLocation, context: Mapping[str, Any]
) -> PinnedInput | None:
    """The newest commit the run's triggering asset events carry for ``source``'s repository and branch.

    None when no event names them. A commit that is no longer in the branch's history raises
    :class:`CommitNotAncestorError`.
    """
    from_events = asset_event_commits(context, source.repository, source.ref)
    if not from_events:
        return None
    commit_id = from_events[-1]
    _require_in_history(hook, name, source, commit_id, "from the run's triggering asset event")
    return PinnedInput(name, source, commit_id, RULE_ASSET_EVENT)


def _require_in_history(hook: LakeFSHook, name: str, source: LakeFSLocation, commit_id: str, origin: str) -> None:
    if not hook.is_ancestor(source.repository, commit_id, source.ref):
        raise CommitNotAncestorError(
            f"Input '{name}': commit {commit_id} {origin} is no longer in the history of branch "
            f"'{source.ref}' of repository '{source.repository}': the branch was reset or force-moved "
            "under this run",
            repository=source.repository,
            ref=source.ref,
        )


def pin_input(
    hook: LakeFSHook,
    name: str,
    source: LakeFSLocation,
    context: Mapping[str, Any],
    detections: Iterable[Detection] = (),
) -> PinnedInput:
    """Bind one declared input to a commit id by the rules in this module's docstring."""
    if not is_branch(hook, source):
        try:
            commit_id = hook.resolve_commit_id(source.repository, source.ref)
        except LakeFSNotFoundError as exc:
            raise LakeFSNotFoundError(
                f"Input '{name}': {source.uri}: repository '{source.repository}' has no branch, tag or commit "
                f"'{source.ref}' ({exc})",
                repository=source.repository,
                ref=source.ref,
                path=source.path,
                status=exc.status,
                server_message=exc.server_message,
            ) from exc
        return PinnedInput(name, source, commit_id, RULE_REF)
    from_events = pin_from_asset_events(hook, name, source, context)
    if from_events is not None:
        return from_events
    matching = [d for d in detections if (d.repository, d.branch) == (source.repository, source.ref)]
    if matching:
        heads = {d.head for d in matching}
        if len(heads) > 1:
            raise CommitNotAncestorError(
                f"Input '{name}': the sensors upstream of this task saw different heads of branch '{source.ref}' "
                f"of repository '{source.repository}' ({', '.join(sorted(heads))}); give the input an explicit ref",
                repository=source.repository,
                ref=source.ref,
            )
        head = matching[0].head
        _require_in_history(hook, name, source, head, f"(detected by sensor '{matching[0].task_id}')")
        return PinnedInput(name, source, head, RULE_SENSOR)
    when = run_instant(context)
    commit = hook.branch_head_as_of(source.repository, source.ref, when)
    return PinnedInput(name, source, commit.id, RULE_AS_OF, as_of=when.isoformat())


def pin_latest(hook: LakeFSHook, name: str, source: LakeFSLocation) -> PinnedInput:
    """Bind to the branch head right now (the inference model policy ``latest``)."""
    return PinnedInput(name, source, hook.resolve_commit_id(source.repository, source.ref), RULE_LATEST)


def check_against_first_attempt(context: Mapping[str, Any], pins: Mapping[str, PinnedInput]) -> None:
    """Record this task's ``as_of`` pins on its first attempt; fail if a later attempt differs.

    Uses Airflow 3.3's task state store (kept across clears, never expiring). On older Airflow
    the check is skipped: pins are still deterministic, but a force-moved branch goes unnoticed.
    """
    store = context.get("task_state_store")
    if store is None:
        return
    current = {name: pin.commit_id for name, pin in pins.items() if pin.rule in (RULE_AS_OF, RULE_SENSOR)}
    if not current:
        return
    try:
        recorded_raw = store.get(_STATE_STORE_KEY)
    except Exception:
        recorded_raw = None
    if recorded_raw:
        recorded = json.loads(recorded_raw) if isinstance(recorded_raw, str) else dict(recorded_raw)
        for name, commit_id in current.items():
            first = recorded.get(name)
            if first and first != commit_id:
                pin = pins[name]
                raise CommitNotAncestorError(
                    f"Input '{name}': branch '{pin.source.ref}' of repository '{pin.source.repository}' was "
                    f"reset or force-moved since this run first pinned it (rule {pin.rule}): the first attempt "
                    f"read {first}, this attempt would read {commit_id}",
                    repository=pin.source.repository,
                    ref=pin.source.ref,
                )
        missing = {k: v for k, v in current.items() if k not in recorded}
        if not missing:
            return
        current = {**recorded, **missing}
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    store.set(_STATE_STORE_KEY, dict(sorted(current.items())), retention=NEVER_EXPIRE)


__all__ = [
    "ASSET_EVENT_KEY",
    "DETECTION_XCOM_KEY",
    "Detection",
    "PinnedInput",
    "asset_event_commits",
    "check_against_first_attempt",
    "pin_from_asset_events",
    "pin_input",
    "pin_latest",
    "run_instant",
]
