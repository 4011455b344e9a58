"""OpenLineage of ``dag.test()`` / ``airflow dags test`` runs: their own run identity, and a DAG-run START.

Two gaps of the openlineage provider in the ``dag.test()`` path (``airflow dags test`` uses it too):

* **Run ids repeat.** The provider derives run ids deterministically: a DAG run's from
  ``(namespace, dag_id, logical date, clear number)``, a task's from ``(namespace, dag_id, task_id,
  try number, map index, logical date)``. A real Airflow clear increments the clear and try numbers,
  but ``dag.test()`` *deletes* the DAG run of that logical date and creates a new one: clear number 0,
  try number 1 again, so a re-run reuses the ids of the run before. Marquez then merges both into one
  run (two model inputs, one of the two prediction commits without a dataset version).
* **No DAG-run START.** ``dag.test()`` creates the DAG run already running, so the listener's
  ``on_dag_run_running`` never fires: only the DAG's COMPLETE / FAIL is emitted.

The fix, active **only** for DAG runs made by ``dag.test()`` (``triggering_user_name`` ``dag_test``):
:class:`DagTestRunsListener` (registered by :class:`airflow_mlrepo.lineage.plugin.MlrepoLineagePlugin`)
runs before the provider's listener when a task of such a run starts, in the ``dag.test()`` process,
and

1. records the run's ``run_after`` (the moment ``dag.test()`` was called: unique per invocation) for
   its ``(dag_id, logical date)``; the provider's two id builders, wrapped once by
   :func:`install_run_id_salt`, then derive that run's ids from the provider's id *and* that moment
   (:func:`salted_run_id`, still a UUIDv7 on the logical date). Every caller in the process (the
   listener's task and DAG events, the ``lineage_run_id`` macros, the ids our operators record in
   commit metadata) gets the same new ids;
2. emits the DAG-run START (once per DAG run), before the provider emits the task's START, at the
   moment the run's first task started (:func:`dag_run_started_at`): ``dag.test()`` sets the DAG run's
   ``start_date`` to the *logical date* (and a re-run may pass an earlier ``run_after``), so neither
   is when the run really began; Marquez would show a ``startedAt`` after the run's ``endedAt``.

Runs the scheduler makes are untouched: the builders return the provider's ids unchanged for them.
Limit: ``dag.test(use_executor=True)`` runs tasks in executor processes, where the DAG's own COMPLETE
(emitted by the ``dag.test()`` process) would keep the provider's id; the default path runs tasks in
process.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: ``DagRun.triggering_user_name`` of the runs ``dag.test()`` creates (``airflow.sdk.definitions.dag``).
DAG_TEST_USER = "dag_test"

_lock = threading.Lock()
#: (dag_id, logical date as UTC ISO) -> the run's ``run_after`` (UTC ISO): runs of this process's dag.test()
_test_runs: dict[tuple[str, str], str] = {}
_started: set[str] = set()
_installed = False


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def salted_run_id(provider_run_id: str, logical_date: datetime, run_after: str) -> str:
    """The id of a ``dag.test()`` run: the provider's id made unique by the moment the run was made."""
    from openlineage.client.uuid import generate_static_uuid

    return str(generate_static_uuid(instant=logical_date, data=f"{provider_run_id}.dag_test.{run_after}".encode()))


def _salt(dag_id: str, logical_date: datetime) -> str | None:
    with _lock:
        return _test_runs.get((dag_id, _iso(logical_date)))


def install_run_id_salt() -> None:
    """Wrap the provider's run-id builders (once per process) so ``dag.test()`` runs get their own ids."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from airflow.providers.openlineage.plugins import adapter
    from airflow.providers.openlineage.utils import utils

    original_dag = utils.build_dag_run_ol_run_id
    original_task = utils.build_task_instance_ol_run_id

    def build_dag_run_ol_run_id(dag_id: str, logical_date: datetime, clear_number: int) -> str:
        run_id = str(original_dag(dag_id=dag_id, logical_date=logical_date, clear_number=clear_number))
        salt = _salt(dag_id, logical_date)
        return run_id if salt is None else salted_run_id(run_id, logical_date, salt)

    def build_task_instance_ol_run_id(
        dag_id: str, task_id: str, try_number: int, logical_date: datetime, map_index: int
    ) -> str:
        run_id = str(
            original_task(
                dag_id=dag_id, task_id=task_id, try_number=try_number, logical_date=logical_date, map_index=map_index
            )
        )
        salt = _salt(dag_id, logical_date)
        return run_id if salt is None else salted_run_id(run_id, logical_date, salt)

    for module in (adapter, utils):
        setattr(module, "build_dag_run_ol_run_id", build_dag_run_ol_run_id)  # noqa: B010
        setattr(module, "build_task_instance_ol_run_id", build_task_instance_ol_run_id)  # noqa: B010


def register_test_run(dag_run: Any) -> bool:
    """Record a ``dag.test()`` DAG run (True), or nothing for any other run (False)."""
    if getattr(dag_run, "triggering_user_name", None) != DAG_TEST_USER or dag_run.run_after is None:
        return False
    date = dag_run.logical_date or dag_run.run_after
    with _lock:
        _test_runs[(dag_run.dag_id, _iso(date))] = _iso(dag_run.run_after)
    return True


def dag_run_started_at(task_instance: Any) -> datetime:
    """When a ``dag.test()`` DAG run really began: its first task's start, else now (never its logical date)."""
    started = getattr(task_instance, "start_date", None)
    now = datetime.now(timezone.utc)
    if not isinstance(started, datetime):
        return now
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    return min(started, now)


def _emit_dag_run_start(dag_run: Any, started_at: datetime) -> None:
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener

    if conf.is_disabled():
        return
    adapter = get_openlineage_listener().adapter
    date = dag_run.logical_date or dag_run.run_after
    clear_number = int(getattr(dag_run, "clear_number", 0) or 0)
    run_id = adapter.build_dag_run_id(dag_id=dag_run.dag_id, logical_date=date, clear_number=clear_number)
    with _lock:
        if run_id in _started:
            return
        _started.add(run_id)
    adapter.dag_started(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        logical_date=date,
        start_date=started_at,
        nominal_start_time=dag_run.data_interval_start.isoformat() if dag_run.data_interval_start else None,
        nominal_end_time=dag_run.data_interval_end.isoformat() if dag_run.data_interval_end else None,
        owners=None,
        tags=[],
        run_facets={},
        clear_number=clear_number,
        job_description=None,
        is_asset_triggered=False,
    )


def _dag_run_of(task_instance: Any) -> Any:
    """The task's DAG run: from the template context (Airflow 3's runtime TI), else the attribute."""
    if hasattr(task_instance, "get_template_context"):
        return task_instance.get_template_context().get("dag_run")
    return getattr(task_instance, "dag_run", None)


class DagTestRunsListener:
    """Airflow listener: a ``dag.test()`` run's own ids and its DAG-run START (module docstring)."""

    @hookimpl(tryfirst=True)
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        try:
            dag_run = _dag_run_of(task_instance)
            if dag_run is None or not register_test_run(dag_run):
                return
            install_run_id_salt()
            _emit_dag_run_start(dag_run, dag_run_started_at(task_instance))
        except Exception:  # a listener must never fail a task
            log.warning("Could not prepare the OpenLineage ids of a dag.test() run", exc_info=True)


__all__ = [
    "DAG_TEST_USER",
    "DagTestRunsListener",
    "dag_run_started_at",
    "install_run_id_salt",
    "register_test_run",
    "salted_run_id",
]
