"""The OpenLineage ids of a task attempt, as the openlineage provider computes them, and the commit
metadata keys that carry them.

Every output commit records the run that wrote it (``mlrepo.openlineage_run_id`` and the keys
below), so a later run that reads the commit can name that run in its ``lakefs_commit`` facet and
the outbox can re-register the commit *as that run's output* in Marquez (``marquez.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUN_ID_KEY = "mlrepo.openlineage_run_id"
JOB_NAMESPACE_KEY = "mlrepo.openlineage.namespace"
JOB_NAME_KEY = "mlrepo.openlineage.job_name"
PARENT_RUN_ID_KEY = "mlrepo.openlineage.parent_run_id"
PARENT_JOB_NAME_KEY = "mlrepo.openlineage.parent_job_name"
PARENT_JOB_NAMESPACE_KEY = "mlrepo.openlineage.parent_job_namespace"


@dataclass(frozen=True)
class TaskLineageIds:
    """Namespace, job name and run id of a task attempt and of its DAG run (the parent)."""

    namespace: str
    job_name: str
    run_id: str
    parent_run_id: str
    parent_job_name: str

    def commit_metadata(self) -> dict[str, str]:
        return {
            RUN_ID_KEY: self.run_id,
            JOB_NAMESPACE_KEY: self.namespace,
            JOB_NAME_KEY: self.job_name,
            PARENT_RUN_ID_KEY: self.parent_run_id,
            PARENT_JOB_NAME_KEY: self.parent_job_name,
            PARENT_JOB_NAMESPACE_KEY: self.namespace,
        }


def task_lineage_ids(ti: Any) -> TaskLineageIds | None:
    """The ids the openlineage provider's listener uses for ``ti``; None without the provider."""
    try:
        from airflow.providers.openlineage.plugins import macros
        from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

        # the listener's parent run facet is the DAG run, whose id is built from the dag_id, the
        # logical date (or run_after) and the DAG run's clear number
        parent_run_id = OpenLineageAdapter.build_dag_run_id(
            dag_id=ti.dag_id,
            logical_date=macros._get_logical_date(ti),  # type: ignore[no-untyped-call]
            clear_number=macros._get_dag_run_clear_number(ti),
        )
        return TaskLineageIds(
            namespace=str(macros.lineage_job_namespace()),  # type: ignore[no-untyped-call]
            job_name=str(macros.lineage_job_name(ti)),
            run_id=str(macros.lineage_run_id(ti)),
            parent_run_id=str(parent_run_id),
            parent_job_name=str(ti.dag_id),
        )
    except Exception:
        return None


__all__ = [
    "JOB_NAMESPACE_KEY",
    "JOB_NAME_KEY",
    "PARENT_JOB_NAMESPACE_KEY",
    "PARENT_JOB_NAME_KEY",
    "PARENT_RUN_ID_KEY",
    "RUN_ID_KEY",
    "TaskLineageIds",
    "task_lineage_ids",
]
