"""Attempt branches: the identity their names carry, and which of them are leftovers.

Every attempt of a :class:`~airflow_mlrepo.operators.pod.LakeFSPodOperator` writes to a branch of
its own, ``mlrepo-<task>-<dag key>-<instance key>-try<n>``:

* ``<task>``: the task id, made branch-safe (for people reading ``lakectl branch list``);
* ``<dag key>``: 8 hex digits of the SHA-1 of the DAG id;
* ``<instance key>``: 12 hex digits of the SHA-1 of ``dag_id|run_id|task_id|map_index``;
* ``<n>``: the try number.

lakeFS branches carry no metadata and an attempt branch has no commit of its own until it
publishes, so the name is all there is. The keys are one-way; Airflow knows the task instances, so
whoever asks Airflow (the next task of the same DAG through the Task SDK, ``mlrepo cleanup
attempts`` through the metadata database) recomputes the keys of the instances it knows and matches.

A branch is a leftover, safe to delete, when its task instance is finished (``success``,
``failed``, ``skipped``, ``upstream_failed``, ``removed``: no try of it runs now, and a later try
gets a branch of its own), or when Airflow has no such task instance (its run, or its DAG, was
deleted). A task instance in any other state (running, queued, scheduled, deferred, up_for_retry,
up_for_reschedule, restarting, or none yet) keeps its branches.

Two more kinds of name are known:

* a datum pipeline run's branches, ``mlrepo-d-<run key>-b<batch>-try<n>`` and
  ``mlrepo-d-<run key>-merge-try<n>`` (:mod:`airflow_mlrepo.operators.datums`), ``<run key>`` 12 hex
  digits of the SHA-1 of ``dag_id|run_id|pipeline``. Their commit task deletes them; a killed one
  leaves them. They are leftovers when the pipeline run is finished (its commit task, or its DAG
  run, in a finished state) or gone;
* the names of releases before the DAG key, ``mlrepo-<task>-<instance key>-try<n>``: only
  ``mlrepo cleanup attempts`` (which knows every task instance) judges them.

Any other name (a person's branch that happens to start with ``mlrepo-``) is never deleted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

ATTEMPT_BRANCH_PREFIX = "mlrepo-"
#: Task-instance states after which no try of the instance runs any more (Airflow's ``State.finished``).
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
_NAME_RE = re.compile(
    rf"^{re.escape(ATTEMPT_BRANCH_PREFIX)}(?P<task>[A-Za-z0-9_-]+)-(?P<dag>[0-9a-f]{{8}})-(?P<instance>[0-9a-f]{{12}})"
    r"-try(?P<try_number>[0-9]+)$"
)
DATUM_RUN_BRANCH_PREFIX = f"{ATTEMPT_BRANCH_PREFIX}d-"
_DATUM_RUN_RE = re.compile(
    rf"^{re.escape(DATUM_RUN_BRANCH_PREFIX)}(?P<run_key>[0-9a-f]{{12}})-(?:b[0-9]+|merge)-try[0-9]+$"
)
_OLD_NAME_RE = re.compile(
    rf"^{re.escape(ATTEMPT_BRANCH_PREFIX)}(?P<task>[A-Za-z0-9_-]+)-(?P<instance>[0-9a-f]{{12}})-try[0-9]+$"
)


def branch_safe(text: str) -> str:
    """``text`` as the readable part of a branch name (lakeFS allows ``[A-Za-z0-9_-]``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:40].strip("-") or "task"


def state_name(state: Any) -> str | None:
    """A task-instance or DAG-run state (an enum member, a string, or None) as its string."""
    return None if state is None else str(getattr(state, "value", state))


def dag_key(dag_id: str) -> str:
    return hashlib.sha1(dag_id.encode()).hexdigest()[:8]


def datum_run_key(dag_id: str, run_id: str, pipeline: str) -> str:
    """The key of one datum pipeline run: every branch of that run starts with :func:`datum_run_prefix`."""
    return hashlib.sha1(f"{dag_id}|{run_id}|{pipeline}".encode()).hexdigest()[:12]


def datum_run_prefix(run_key: str) -> str:
    """Every branch of one datum pipeline run starts with this (``…b<i>-try<n>``, ``…merge-try<n>``)."""
    return f"{DATUM_RUN_BRANCH_PREFIX}{run_key}-"


def datum_run_key_of(name: str) -> str | None:
    """The run key a datum pipeline branch name carries, or None for any other name."""
    match = _DATUM_RUN_RE.match(name)
    return None if match is None else match["run_key"]


def old_instance_key_of(name: str) -> str | None:
    """The instance key of an attempt branch named before the DAG key (``mlrepo-<task>-<key>-try<n>``)."""
    if AttemptBranch.parse(name) is not None or datum_run_key_of(name) is not None:
        return None
    match = _OLD_NAME_RE.match(name)
    return None if match is None else match["instance"]


@dataclass(frozen=True)
class TaskInstanceId:
    """The task instance an attempt branch belongs to."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def key(self) -> str:
        text = f"{self.dag_id}|{self.run_id}|{self.task_id}|{self.map_index}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @property
    def branch_prefix(self) -> str:
        """Prefix of every attempt branch of this task instance (all its tries)."""
        return f"{ATTEMPT_BRANCH_PREFIX}{branch_safe(self.task_id)}-{dag_key(self.dag_id)}-{self.key}-"

    def branch(self, try_number: int) -> str:
        return f"{self.branch_prefix}try{try_number}"

    def __str__(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{mapped}"


@dataclass(frozen=True)
class AttemptBranch:
    """What an attempt branch's name says."""

    name: str
    task: str
    dag_key: str
    instance_key: str
    try_number: int

    @classmethod
    def parse(cls, name: str) -> AttemptBranch | None:
        """The parts of an attempt branch name, or None for any other name."""
        match = _NAME_RE.match(name)
        if match is None:
            return None
        return cls(name, match["task"], match["dag"], match["instance"], int(match["try_number"]))


@dataclass(frozen=True)
class KnownTaskInstance:
    """A task instance Airflow knows, with its state (None: not scheduled yet)."""

    id: TaskInstanceId
    state: str | None


@dataclass(frozen=True)
class KnownDatumRun:
    """A datum pipeline run Airflow knows: ``state`` is its commit task's or its DAG run's (None: not yet)."""

    run_key: str
    dag_id: str
    run_id: str
    pipeline: str
    state: str | None

    def __str__(self) -> str:
        return f"{self.dag_id}/{self.run_id} (pipeline {self.pipeline})"


@dataclass(frozen=True)
class Verdict:
    """What to do with one attempt branch, and why."""

    branch: str
    delete: bool
    reason: str
    owner: TaskInstanceId | None = None


def judge(
    branches: Iterable[str],
    dag_ids: Iterable[str],
    instances: Iterable[KnownTaskInstance],
    *,
    every_dag_known: bool,
    datum_runs: Iterable[KnownDatumRun] = (),
) -> list[Verdict]:
    """Decide, for each branch, whether it is a leftover.

    ``dag_ids`` are the DAGs whose task instances ``instances`` lists completely (for the tasks the
    branches name), and ``datum_runs`` the datum pipeline runs of those DAGs. With
    ``every_dag_known`` (the metadata database: it knows every DAG and every task instance), a
    branch of a DAG not among them belongs to a deleted DAG and is a leftover; without it (a task,
    which asks about its own DAG only), such a branch belongs to someone else and gets no verdict.
    """
    dags = {dag_key(dag_id): dag_id for dag_id in dag_ids}
    instances = list(instances)
    known = {(dag_key(ti.id.dag_id), ti.id.key): ti for ti in instances}
    by_instance_key = {ti.id.key: ti for ti in instances}
    runs = {run.run_key: run for run in datum_runs}
    verdicts: list[Verdict] = []
    for name in branches:
        run_key = datum_run_key_of(name)
        if run_key is not None:
            verdict = _judge_datum_branch(name, runs.get(run_key), every_dag_known=every_dag_known)
            if verdict is not None:
                verdicts.append(verdict)
            continue
        branch = AttemptBranch.parse(name)
        if branch is None:
            old_key = old_instance_key_of(name)
            if old_key is not None and every_dag_known:
                gone = "old-format name, and no task instance in Airflow has its key (its run was deleted)"
                verdicts.append(_judge_instance(name, by_instance_key.get(old_key), gone))
            elif old_key is None:
                verdicts.append(Verdict(name, False, "not an attempt branch name (left alone)"))
            continue
        dag_id = dags.get(branch.dag_key)
        if dag_id is None:
            if every_dag_known:
                verdicts.append(Verdict(name, True, "its DAG no longer exists in Airflow"))
            continue
        ti = known.get((branch.dag_key, branch.instance_key))
        verdicts.append(_judge_instance(name, ti, f"its run no longer exists (DAG {dag_id} has no such task instance)"))
    return verdicts


def _judge_instance(name: str, ti: KnownTaskInstance | None, gone: str) -> Verdict:
    if ti is None:
        return Verdict(name, True, gone)
    if ti.state in FINISHED_STATES:
        return Verdict(name, True, f"task instance {ti.id} is {ti.state}", ti.id)
    return Verdict(name, False, f"task instance {ti.id} is {ti.state or 'not started'}: it may still write", ti.id)


def _judge_datum_branch(name: str, run: KnownDatumRun | None, *, every_dag_known: bool) -> Verdict | None:
    if run is None:
        if every_dag_known:
            return Verdict(name, True, "no datum pipeline run in Airflow has this key (its run was deleted)")
        return None
    if run.state in FINISHED_STATES:
        return Verdict(name, True, f"datum pipeline run {run} is {run.state}")
    state = run.state or "not finished"
    return Verdict(name, False, f"datum pipeline run {run} is {state}: its batches may still write")


def instances_from_task_states(
    dag_id: str, task_states: Mapping[str, Mapping[str, Any]], task_ids: Iterable[str]
) -> list[KnownTaskInstance]:
    """The Task SDK's ``get_task_states`` answer as instances.

    Its shape is ``{run_id: {key: state}}``, ``key`` the task id, or ``<task id>_<map index>`` for
    a mapped instance.
    """
    tasks = set(task_ids)
    found: list[KnownTaskInstance] = []
    for run_id, states in task_states.items():
        for key, state in states.items():
            value = state_name(state)
            if key in tasks:
                found.append(KnownTaskInstance(TaskInstanceId(dag_id, run_id, key), value))
            task_id, _, index = key.rpartition("_")
            if task_id in tasks and index.isdigit():
                found.append(KnownTaskInstance(TaskInstanceId(dag_id, run_id, task_id, int(index)), value))
    return found


def delete_leftovers(hook: LakeFSHook, repository: str, verdicts: Iterable[Verdict], log: Any) -> list[str]:
    """Delete the branches judged leftovers, logging each with its reason; the names deleted."""
    deleted = []
    for verdict in verdicts:
        if verdict.delete:
            log.info("Removing leftover branch %s: %s", verdict.branch, verdict.reason)
            hook.delete_branch(repository, verdict.branch, missing_ok=True)
            deleted.append(verdict.branch)
    return deleted
