"""The airflow-mlrepo lineage plugin: the listener that gives ``dag.test()`` runs their own OpenLineage
run ids and their DAG-run START (:mod:`airflow_mlrepo.lineage.dag_test_runs`)."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlrepo.lineage.dag_test_runs import DagTestRunsListener


class MlrepoLineagePlugin(AirflowPlugin):
    """Registers :class:`~airflow_mlrepo.lineage.dag_test_runs.DagTestRunsListener`."""

    name = "airflow_mlrepo_lineage"
    listeners: list[Any] = [DagTestRunsListener()]


__all__ = ["MlrepoLineagePlugin"]
