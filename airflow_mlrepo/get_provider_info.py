"""Provider metadata read by Airflow's provider discovery (entry point ``apache_airflow_provider``).

The connection form is declared as data (``conn-fields`` and ``ui-field-behaviour``), the
Airflow 3.2+ way, so the UI renders it without importing the hook.
"""

from __future__ import annotations

from typing import Any

from airflow_mlrepo import __version__


def _string_field(label: str, description: str, *, secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-mlrepo",
        "name": "airflow-mlrepo",
        "description": "Reproducible ML pipelines on lakeFS: commit sensors and triggers, pinned "
        "training/inference pods, atomic output commits with provenance, OpenLineage lineage.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "lakefs",
                "hook-class-name": "airflow_mlrepo.hooks.lakefs.LakeFSHook",
                "hook-name": "lakeFS",
                "conn-fields": {
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "description": "Turn off only for a lakeFS with a self-signed certificate.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "request_timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Timeout of each lakeFS API call. Default 60.",
                        "schema": {"type": ["number", "null"]},
                    },
                    "ui_url": _string_field(
                        "lakeFS UI URL",
                        "Base URL for links to commits in the lakeFS web UI, if it differs from the "
                        "endpoint (e.g. behind a proxy).",
                    ),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "lakeFS endpoint URL",
                        "login": "Access key ID",
                        "password": "Secret access key",
                    },
                    "placeholders": {
                        "host": "http://localhost:8000",
                        "login": "AKIAIOSFODNN7EXAMPLE",
                        "password": "lakeFS secret access key",
                    },
                },
            }
        ],
        "hooks": [
            {
                "integration-name": "lakeFS",
                "python-modules": ["airflow_mlrepo.hooks.lakefs"],
            }
        ],
    }
