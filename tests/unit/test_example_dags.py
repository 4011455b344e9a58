"""Every example DAG imports cleanly with the provider installed (they are run by integration tests)."""

from __future__ import annotations

from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_example_dags_import_without_errors() -> None:
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert "iris_daily" in bag.dag_ids
    dag = bag.dags["iris_daily"]
    assert [t.task_id for t in dag.topological_sort()] == ["train", "predict"]
