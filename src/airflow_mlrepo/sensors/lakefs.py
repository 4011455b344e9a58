"""``LakeFSCommitSensor``: wait for new commits on a lakeFS branch and return them.

The rules are written down in ``docs/concepts/detection-windows.md``; in short, a run's **window**
is the commits after a *baseline* on the branch, up to a *horizon*, as
:func:`airflow_mlrepo.changes.changed_commits` answers it (merges count by their diff against their
first parent, side branches merged late count):

* **Baseline**, first match wins:

  1. ``since_commit`` (templated; any ref, resolved to a commit id);
  2. the branch head as of the **previous successful run's data interval end**
     (``prev_data_interval_end_success``, which the worker gets from the Execution API, no metadata
     DB access): where the previous successful window ended;
  3. the branch head as of this run's **data interval start**;
  4. for runs without a data interval (manual runs without a logical date, asset-triggered runs):
     the branch head as of the run's ``run_after`` (commits made after the run was created).

  On Airflow 3.3+ the resolved baseline is recorded in the task state store on the first poke, so
  later pokes (``reschedule`` mode starts a new process each time) and retries reuse it.
* **Horizon**: a **scheduled** or **backfilled** run sees only commits up to its **data interval
  end**: the branch head as of that end. Consecutive successful runs therefore see disjoint windows
  ``(end of the previous success, own end]``, and the commits of a failed run are offered again to
  the next one. Until the end has passed such a run waits; once it has, a window with no matching
  commit ends the run at once (skipped with ``soft_fail``, otherwise failed with
  :class:`~airflow_mlrepo.exceptions.NoNewCommitsError`). **Manual** and **asset-triggered** runs
  have a live horizon (the branch head when checked): they wait for new commits.
* **A long wait moves forward.** A live window that is checked again only looks at the commits
  after the head it checked last (recorded with the baseline), so a wait on a busy branch costs the
  same per check after an hour as after a minute and never reaches the walk limit.

When commits are found they are returned (XCom) as a list of
:meth:`LakeFSCommit.to_dict` dicts, oldest first, and the result (baseline, head, commit ids) is
recorded in the task state store with ``NEVER_EXPIRE``. A **cleared** run of the sensor replays
that record: it returns the very same commits (re-read from lakeFS and checked to be still in the
branch's history, else :class:`~airflow_mlrepo.exceptions.CommitNotAncestorError`). On Airflow
< 3.3 there is no task state store: clears re-evaluate the window.

A missing repository or branch fails at once with
:class:`~airflow_mlrepo.exceptions.LakeFSNotFoundError` (no waiting for a branch to appear). An
unreachable lakeFS during a poke is logged and counts as "not yet"; in deferrable mode the trigger
keeps waiting with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlrepo.changes import CommitFilter, matching_commits
from airflow_mlrepo.exceptions import (
    CommitDetectionError,
    CommitNotAncestorError,
    LakeFSBadInputError,
    LakeFSUnavailableError,
    NoNewCommitsError,
)
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from airflow_mlrepo.locations import validate_branch, validate_repository
from airflow_mlrepo.pinning import DETECTION_XCOM_KEY, Detection
from airflow_mlrepo.provenance import plain_value
from airflow_mlrepo.triggers.lakefs import (
    DEFAULT_POLL_INTERVAL,
    LakeFSCommitTrigger,
    trigger_error_class,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Task state store key of the sensor's record (baseline, and the result once found).
STATE_KEY = "airflow_mlrepo.lakefs_commit_sensor"

BASELINE_EXPLICIT = "since_commit"
BASELINE_PREVIOUS_SUCCESS = "previous_success"
BASELINE_INTERVAL_START = "data_interval_start"
BASELINE_RUN_AFTER = "run_after"
#: Run types whose window ends at the run's data interval end.
BOUNDED_RUN_TYPES = ("scheduled", "backfill")


@dataclass(frozen=True)
class CommitWindow:
    """What one run of the sensor looks at: commits after ``baseline`` up to ``horizon``.

    ``horizon`` is None for a live window (the branch head when checked), or the commit id that
    closes the window. ``opens_at`` is the data interval end a bounded window still waits for.
    ``scanned`` is the last head an earlier check of this live window looked at without a match:
    the next check starts there. ``recorded_head``/``recorded_commits`` are set when an earlier
    attempt of this run already found the answer.
    """

    baseline: str
    baseline_rule: str
    horizon: str | None = None
    horizon_as_of: str | None = None
    opens_at: datetime | None = None
    scanned: str | None = None
    recorded_head: str | None = None
    recorded_commits: tuple[str, ...] = ()

    @property
    def start(self) -> str:
        """Where the next check starts: after the last head checked, else after the baseline."""
        return self.scanned or self.baseline

    @property
    def closed(self) -> bool:
        return self.horizon is not None

    @property
    def replay(self) -> bool:
        return self.recorded_head is not None


def _context_value(context: Mapping[str, Any], key: str) -> Any:
    """A context entry with lazy proxies (``prev_*_success``) resolved."""
    value = context.get(key)
    if value is None:
        return None
    return getattr(value, "__wrapped__", value)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def _state_store(context: Mapping[str, Any]) -> Any:
    return context.get("task_state_store")


def _never_expire() -> Any:
    try:
        from airflow.sdk.execution_time.context import NEVER_EXPIRE
    except ImportError:  # Airflow < 3.3
        return None
    return NEVER_EXPIRE


class LakeFSCommitSensor(BaseSensorOperator):
    """Wait for commits on a lakeFS branch after a baseline; return them (list of dicts, oldest first).

    Works in ``poke``, ``reschedule`` and deferrable mode (``deferrable=True``, default from
    ``[operators] default_deferrable``), where it holds no worker slot while waiting.

    :param repository: lakeFS repository (templated).
    :param branch: branch to watch (templated).
    :param since_commit: explicit baseline: any ref or commit id (templated). See the module
        docstring for the baseline used when it is not given.
    :param prefixes: only commits that change something under one of these path prefixes (templated).
    :param objects: only commits that change one of these exact object paths (templated).
    :param metadata: only commits whose metadata has these key/values (templated).
    :param first_parent: only the branch's own first-parent history.
    :param lakefs_conn_id: Airflow connection of type ``lakefs`` (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poke_interval: seconds between checks, also the trigger's poll interval.
    """

    template_fields: Sequence[str] = (
        "repository",
        "branch",
        "since_commit",
        "prefixes",
        "objects",
        "metadata",
        "lakefs_conn_id",
    )
    ui_color = "#9bd4e4"

    def __init__(
        self,
        *,
        repository: str,
        branch: str,
        since_commit: str | None = None,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        first_parent: bool = False,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.repository = repository
        self.branch = branch
        self.since_commit = since_commit
        self.prefixes = list(prefixes) if prefixes is not None else None
        self.objects = list(objects) if objects is not None else None
        self.metadata = dict(metadata) if metadata is not None else None
        self.first_parent = first_parent
        self.lakefs_conn_id = lakefs_conn_id
        self.deferrable = deferrable

    # ------------------------------------------------------------------ parts

    def _hook(self) -> LakeFSHook:
        return LakeFSHook(self.lakefs_conn_id)

    def _commit_filter(self) -> CommitFilter:
        return CommitFilter.build(self.prefixes, self.objects, self.metadata, self.first_parent)

    def _where(self) -> str:
        return f"branch '{self.branch}' of lakeFS repository '{self.repository}'"

    def _record_identity(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "branch": self.branch,
            "filter": self._commit_filter().digest,
            "since_commit": self.since_commit,
        }

    def _read_record(self, context: Mapping[str, Any]) -> dict[str, Any] | None:
        store = _state_store(context)
        if store is None:
            return None
        value = store.get(STATE_KEY)
        if not isinstance(value, Mapping):
            return None
        identity = self._record_identity()
        if any(value.get(key) != wanted for key, wanted in identity.items()):
            self.log.warning("Ignoring the recorded window of this run: the sensor's arguments changed since")
            return None
        return dict(value)

    def _write_record(self, context: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        store = _state_store(context)
        if store is None:
            return
        store.set(STATE_KEY, {**self._record_identity(), **record}, retention=_never_expire())

    # ------------------------------------------------------------------ window

    def resolve_window(self, hook: LakeFSHook, context: Mapping[str, Any]) -> CommitWindow:
        """This run's window (see the module docstring); records the baseline on first use."""
        validate_repository(self.repository)
        validate_branch(self.branch)
        record = self._read_record(context)
        if record and record.get("head"):
            return CommitWindow(
                baseline=str(record["baseline"]),
                baseline_rule=str(record.get("baseline_rule", "")),
                recorded_head=str(record["head"]),
                recorded_commits=tuple(record.get("commit_ids") or ()),
            )
        if record and record.get("baseline"):
            baseline, rule = str(record["baseline"]), str(record.get("baseline_rule", ""))
        else:
            baseline, rule = self._resolve_baseline(hook, context)
            self._write_record(context, {"baseline": baseline, "baseline_rule": rule})
        scanned = (record or {}).get("scanned") or getattr(self, "_scanned", None)
        horizon, horizon_as_of, opens_at = self._resolve_horizon(hook, context)
        return CommitWindow(
            baseline=baseline,
            baseline_rule=rule,
            horizon=horizon,
            horizon_as_of=horizon_as_of,
            opens_at=opens_at,
            scanned=str(scanned) if scanned and horizon is None else None,
        )

    def _advance(self, context: Mapping[str, Any], window: CommitWindow, head: str) -> None:
        """Record that the live window was checked up to ``head`` without a match: start there next time."""
        if head == window.start:
            return
        self._scanned = head
        self._write_record(
            context, {"baseline": window.baseline, "baseline_rule": window.baseline_rule, "scanned": head}
        )

    def _resolve_baseline(self, hook: LakeFSHook, context: Mapping[str, Any]) -> tuple[str, str]:
        if self.since_commit:
            return hook.resolve_commit_id(self.repository, self.since_commit), BASELINE_EXPLICIT
        candidates = (
            (BASELINE_PREVIOUS_SUCCESS, _as_datetime(_context_value(context, "prev_data_interval_end_success"))),
            (BASELINE_INTERVAL_START, _as_datetime(_context_value(context, "data_interval_start"))),
            (BASELINE_RUN_AFTER, _as_datetime(getattr(context.get("dag_run"), "run_after", None))),
        )
        for rule, when in candidates:
            if when is not None:
                commit = hook.branch_head_as_of(self.repository, self.branch, when)
                self.log.info("Baseline %s: head of %s as of %s (%s)", commit.id, self._where(), when, rule)
                return commit.id, rule
        raise LakeFSBadInputError(
            f"Cannot choose a baseline for {self._where()}: the run has no data interval and no run_after; "
            "pass since_commit",
            repository=self.repository,
            ref=self.branch,
        )

    def _resolve_horizon(
        self, hook: LakeFSHook, context: Mapping[str, Any]
    ) -> tuple[str | None, str | None, datetime | None]:
        """``(horizon commit, its as-of time, time the window still waits for)``; all None when live."""
        dag_run = context.get("dag_run")
        run_type = plain_value(getattr(dag_run, "run_type", None))
        end = _as_datetime(_context_value(context, "data_interval_end"))
        if run_type not in BOUNDED_RUN_TYPES or end is None:
            return None, None, None
        if end > datetime.now(timezone.utc):
            return None, end.isoformat(), end
        commit = hook.branch_head_as_of(self.repository, self.branch, end)
        return commit.id, end.isoformat(), None

    # ------------------------------------------------------------------ checks

    def find_new_commits(self, hook: LakeFSHook, window: CommitWindow) -> tuple[str, list[LakeFSCommit]]:
        """The head looked at and the matching commits after the baseline up to it, oldest first."""
        commit_filter = self._commit_filter()
        head = window.horizon or hook.get_branch_head(self.repository, self.branch)
        if head in (window.baseline, window.start):
            return head, []
        try:
            try:
                commits = matching_commits(hook, self.repository, head, window.start, commit_filter)
            except CommitNotAncestorError:
                if window.start == window.baseline:
                    raise
                # The branch moved back between checks: look at the whole window again.
                commits = matching_commits(hook, self.repository, head, window.baseline, commit_filter)
        except CommitNotAncestorError as exc:
            raise CommitNotAncestorError(
                f"Baseline commit {window.baseline} ({window.baseline_rule}) is no longer in the history of "
                f"{self._where()} (head {head}): the branch was reset or force-moved",
                repository=self.repository,
                ref=self.branch,
            ) from exc
        return head, commits

    def _replay(self, hook: LakeFSHook, window: CommitWindow, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        assert window.recorded_head is not None
        if not hook.is_ancestor(self.repository, window.recorded_head, self.branch):
            raise CommitNotAncestorError(
                f"Commit {window.recorded_head}, which an earlier attempt of this run found on {self._where()}, "
                "is no longer in the branch's history: the branch was reset or force-moved",
                repository=self.repository,
                ref=self.branch,
            )
        self.detected_head = window.recorded_head
        self.log.info(
            "Replaying the %d commit(s) an earlier attempt of this run found (head %s)",
            len(window.recorded_commits),
            window.recorded_head,
        )
        self._hand_over(context, window.recorded_head, window.recorded_commits)
        return [hook.get_commit(self.repository, commit_id).to_dict() for commit_id in window.recorded_commits]

    def _hand_over(self, context: Mapping[str, Any], head: str, commit_ids: Sequence[str]) -> None:
        """Tell the run's downstream operators what was detected: they pin ``head`` (rule ``sensor``)."""
        ti = context.get("ti")
        if ti is None:
            return
        detection = Detection(self.repository, self.branch, head, tuple(commit_ids), "sensor", self.task_id)
        ti.xcom_push(key=DETECTION_XCOM_KEY, value=detection.to_dict())

    def _succeed(
        self, context: Mapping[str, Any], window: CommitWindow, head: str, commits: Sequence[LakeFSCommit]
    ) -> list[dict[str, Any]]:
        self.detected_head = head
        self._hand_over(context, head, [commit.id for commit in commits])
        self._write_record(
            context,
            {
                "baseline": window.baseline,
                "baseline_rule": window.baseline_rule,
                "head": head,
                "commit_ids": [commit.id for commit in commits],
            },
        )
        self.log.info(
            "%d new commit(s) on %s after %s, up to %s: %s",
            len(commits),
            self._where(),
            window.baseline,
            head,
            ", ".join(commit.id[:12] for commit in commits),
        )
        return [commit.to_dict() for commit in commits]

    def _closed_and_empty(self, window: CommitWindow) -> None:
        message = (
            f"No matching commit on {self._where()} after {window.baseline} up to {window.horizon}, the head as "
            f"of this run's data interval end {window.horizon_as_of}; newer commits belong to the next run's "
            "window, never to this one"
        )
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise NoNewCommitsError(message, repository=self.repository, branch=self.branch)

    # ------------------------------------------------------------------ modes

    def poke(self, context: Context) -> PokeReturnValue | bool:
        hook = self._hook()
        try:
            window = self.resolve_window(hook, context)
            if window.replay:
                return PokeReturnValue(is_done=True, xcom_value=self._replay(hook, window, context))
            if self._wait_for_interval_end(window):
                return False
            head, commits = self.find_new_commits(hook, window)
        except LakeFSUnavailableError as exc:
            self.log.warning("lakeFS unreachable, will check again: %s", exc)
            return False
        if commits:
            return PokeReturnValue(is_done=True, xcom_value=self._succeed(context, window, head, commits))
        if window.closed:
            self._closed_and_empty(window)
        self._advance(context, window, head)
        self.log.info("No new matching commit on %s after %s yet (head %s)", self._where(), window.baseline, head)
        return False

    def _wait_for_interval_end(self, window: CommitWindow) -> bool:
        """Whether a bounded window's data interval end is still ahead (the run waits for it)."""
        if window.opens_at is None:
            return False
        self.log.info(
            "This run sees commits on %s up to its data interval end %s; waiting for it to pass",
            self._where(),
            window.opens_at.isoformat(),
        )
        return True

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        hook = self._hook()
        window = self.resolve_window(hook, context)
        if window.replay:
            return self._replay(hook, window, context)
        if self._wait_for_interval_end(window):
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            assert window.opens_at is not None
            self.defer(
                trigger=DateTimeTrigger(moment=window.opens_at),
                method_name="execute_after_interval_end",
                timeout=timedelta(seconds=float(self.timeout)),
            )
        head, commits = self.find_new_commits(hook, window)
        if commits:
            return self._succeed(context, window, head, commits)
        if window.closed:
            self._closed_and_empty(window)
        self._advance(context, window, head)
        self.defer(
            trigger=LakeFSCommitTrigger(
                repository=self.repository,
                branch=self.branch,
                baseline_commit=head,
                lakefs_conn_id=self.lakefs_conn_id,
                prefixes=self.prefixes,
                objects=self.objects,
                metadata=self.metadata,
                first_parent=self.first_parent,
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def execute_after_interval_end(self, context: Context, event: Any = None) -> Any:
        """Resume once a bounded window's data interval end has passed: check the closed window."""
        return self.execute(context)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Resume after the trigger: record and return the commits, or raise the trigger's error."""
        if not isinstance(event, Mapping):
            raise CommitDetectionError(f"The commit trigger for {self._where()} ended without an event")
        if event.get("status") != "success":
            message = str(event.get("message") or "unknown error")
            error_class = trigger_error_class(event.get("error_type"))
            if error_class is None:
                raise CommitDetectionError(f"Waiting for commits on {self._where()} failed: {message}")
            raise error_class(message, repository=self.repository, ref=self.branch)
        if event.get("repository") != self.repository or event.get("branch") != self.branch:
            raise CommitDetectionError(
                f"The commit trigger answered for {event.get('repository')}/{event.get('branch')}, "
                f"not for {self._where()}"
            )
        commits = [LakeFSCommit.from_dict(item) for item in event.get("commits") or ()]
        record = self._read_record(context) or {}
        window = CommitWindow(
            baseline=str(record.get("baseline") or event["baseline"]),
            baseline_rule=str(record.get("baseline_rule", "")),
        )
        return self._succeed(context, window, str(event["head"]), commits)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the watched prefixes (or objects, or the branch) as inputs at the head that had the new commits."""
        from airflow_mlrepo.lineage.operator_lineage import sensor_on_complete

        return sensor_on_complete(self, getattr(self, "detected_head", None))


__all__ = ["STATE_KEY", "CommitWindow", "LakeFSCommitSensor"]
