"""dag.test() runs get their own OpenLineage run ids; runs the scheduler makes keep the provider's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunState
from openlineage.client.transport import Transport

from airflow_mlrepo.lineage import dag_test_runs

pytestmark = pytest.mark.unit

LOGICAL = datetime(2026, 11, 30, 6, tzinfo=timezone.utc)


def _dag_run(user: str | None, run_after: datetime) -> SimpleNamespace:
    return SimpleNamespace(
        dag_id="iris_inference", logical_date=LOGICAL, run_after=run_after, triggering_user_name=user, clear_number=0
    )


def _ids() -> tuple[str, str]:
    return (
        OpenLineageAdapter.build_dag_run_id(dag_id="iris_inference", logical_date=LOGICAL, clear_number=0),
        OpenLineageAdapter.build_task_instance_run_id(
            dag_id="iris_inference", task_id="predict", try_number=1, logical_date=LOGICAL, map_index=-1
        ),
    )


def test_each_dag_test_invocation_gets_its_own_ids_and_other_runs_are_untouched() -> None:
    provider_ids = _ids()
    dag_test_runs.install_run_id_salt()
    assert _ids() == provider_ids  # nothing registered: the provider's ids
    assert not dag_test_runs.register_test_run(_dag_run("admin", datetime(2026, 12, 1, 9, tzinfo=timezone.utc)))
    assert _ids() == provider_ids  # a run a user or the scheduler made
    assert dag_test_runs.register_test_run(_dag_run("dag_test", datetime(2026, 12, 1, 9, tzinfo=timezone.utc)))
    first = _ids()
    assert dag_test_runs.register_test_run(_dag_run("dag_test", datetime(2026, 12, 1, 10, tzinfo=timezone.utc)))
    again = _ids()
    assert len({provider_ids, first, again}) == 3
    assert first[0] != first[1]
    # still UUIDv7 on the logical date, as the provider's ids are
    assert {run_id[:13] for run_id in (*first, *again)} == {provider_ids[0][:13]}
    dag_test_runs._test_runs.clear()
    assert _ids() == provider_ids


class _Captured(Transport):
    kind = "captured"

    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


def test_the_dag_run_start_of_a_dag_test_run_is_when_it_really_began_not_its_logical_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dag.test() sets the DAG run's start_date to the logical date: START must not carry it (issue 14, defect 9)."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins import listener

    transport = _Captured()
    adapter = OpenLineageAdapter(client=OpenLineageClient(transport=transport))
    monkeypatch.setattr(listener, "get_openlineage_listener", lambda: SimpleNamespace(adapter=adapter))
    monkeypatch.setattr(conf, "is_disabled", lambda: False)
    now = datetime.now(timezone.utc)
    logical = (now + timedelta(hours=1)).replace(microsecond=0)  # a logical date later than the run itself
    task_started = now - timedelta(seconds=2)
    dag_run = SimpleNamespace(
        dag_id="iris_inference_start_time",
        run_id="manual__x",
        logical_date=logical,
        run_after=now - timedelta(days=1),  # a re-run passes the earlier run's run_after
        start_date=logical,
        data_interval_start=logical,
        data_interval_end=logical,
        triggering_user_name=dag_test_runs.DAG_TEST_USER,
        clear_number=0,
    )
    task_instance = SimpleNamespace(start_date=task_started, get_template_context=lambda: {"dag_run": dag_run})
    try:
        dag_test_runs.DagTestRunsListener().on_task_instance_running(None, task_instance)
        dag_test_runs.DagTestRunsListener().on_task_instance_running(None, task_instance)  # second task: no repeat
    finally:
        dag_test_runs._test_runs.clear()
    (start,) = transport.events
    assert start.eventType == RunState.START
    assert datetime.fromisoformat(start.eventTime) == task_started
    assert datetime.fromisoformat(start.eventTime) <= datetime.now(timezone.utc)
    assert dag_test_runs.dag_run_started_at(SimpleNamespace()) >= now  # no task start known: now
