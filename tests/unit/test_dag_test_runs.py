"""dag.test() runs get their own OpenLineage run ids; runs the scheduler makes keep the provider's."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

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
