"""The Airflow plugin that adds a "Provenance" tab to task instances in the Airflow 3 UI.

An external view (Airflow 3.1+, ``destination="task_instance"``) embeds the page the plugin's
FastAPI app serves from the api-server (:mod:`airflow_mlrepo.provenance_view.app`): no extra
service, and the same login as the UI. Declared, like the webhook receiver, both as an
``airflow.plugins`` entry point and under ``plugins`` in the provider info.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlrepo.provenance_view.app import PAGE_ROUTE, URL_PREFIX, create_app

#: The tab's page, templated by the UI with the task instance's ids.
VIEW_HREF = f"{URL_PREFIX}{PAGE_ROUTE}?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}"


class ProvenanceViewPlugin(AirflowPlugin):
    """Serves ``/mlrepo-provenance`` in the api-server and shows it as a task instance's "Provenance" tab."""

    name = "airflow_mlrepo_provenance_view"
    fastapi_apps: list[Any] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-mlrepo provenance view"}
    ]
    external_views: list[Any] = [
        {
            "name": "Provenance",
            "href": VIEW_HREF,
            "destination": "task_instance",
            "url_route": "mlrepo-provenance",
        }
    ]


__all__ = ["VIEW_HREF", "ProvenanceViewPlugin"]
