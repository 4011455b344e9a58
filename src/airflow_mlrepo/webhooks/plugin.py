"""The Airflow plugin that mounts the lakeFS webhook receiver in the api-server.

Installing airflow-mlrepo is enough: the api-server then serves ``POST /mlrepo/lakefs/events``.
The plugin is declared twice, as OpenLineage's is: as an ``airflow.plugins`` entry point (what
Airflow loads with its default ``[core] lazy_discover_providers=True``) and under ``plugins`` in
the provider info (what it loads when provider discovery is not lazy; it then skips the second
copy with a "already registered" notice).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlrepo.webhooks.lakefs import URL_PREFIX, create_app


class LakeFSWebhookPlugin(AirflowPlugin):
    """Serves the lakeFS webhook receiver under ``/mlrepo`` in the Airflow api-server."""

    name = "airflow_mlrepo_lakefs_webhook"
    fastapi_apps: list[Any] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-mlrepo lakeFS webhook receiver"}
    ]


__all__ = ["LakeFSWebhookPlugin"]
