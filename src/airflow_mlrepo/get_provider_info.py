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


#: Modules of the operators users put in DAGs (training, inference, datums, revert, the pod base).
OPERATOR_MODULES = ("training", "inference", "datums", "revert", "pod")
#: Every extra link an operator of this provider shows.
EXTRA_LINKS = (
    "airflow_mlrepo.links.lakefs.LakeFSOutputCommitLink",
    "airflow_mlrepo.links.marquez.MarquezRunLink",
)


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
        "integrations": [
            {
                "integration-name": "lakeFS",
                "external-doc-url": "https://docs.lakefs.io/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "lakeFS",
                "python-modules": [f"airflow_mlrepo.operators.{module}" for module in OPERATOR_MODULES],
            }
        ],
        "extra-links": list(EXTRA_LINKS),
        "hooks": [
            {
                "integration-name": "lakeFS",
                "python-modules": ["airflow_mlrepo.hooks.lakefs"],
            }
        ],
        "triggers": [
            {
                "integration-name": "lakeFS",
                "python-modules": ["airflow_mlrepo.triggers.lakefs", "airflow_mlrepo.triggers.pod"],
            }
        ],
        "sensors": [
            {
                "integration-name": "lakeFS",
                "python-modules": ["airflow_mlrepo.sensors.lakefs"],
            }
        ],
        "asset-uris": [
            {
                "schemes": ["lakefs"],
                "handler": "airflow_mlrepo.assets.lakefs.sanitize_uri",
                "factory": "airflow_mlrepo.assets.lakefs.create_asset",
                "to_openlineage_converter": "airflow_mlrepo.assets.lakefs.convert_asset_to_openlineage",
            }
        ],
        "plugins": [
            {
                "name": "airflow_mlrepo_lakefs_webhook",
                "plugin-class": "airflow_mlrepo.webhooks.plugin.LakeFSWebhookPlugin",
            },
            {
                "name": "airflow_mlrepo_provenance_view",
                "plugin-class": "airflow_mlrepo.provenance_view.plugin.ProvenanceViewPlugin",
            },
            {
                "name": "airflow_mlrepo_lineage",
                "plugin-class": "airflow_mlrepo.lineage.plugin.MlrepoLineagePlugin",
            },
        ],
        "config": {
            "mlrepo": {
                "description": "airflow-mlrepo settings: the container runner, the lakeFS webhook receiver "
                "(POST /mlrepo/lakefs/events on the api-server), the Provenance tab, the Marquez link and the "
                "lineage outbox.",
                "options": {
                    "runner": {
                        "description": "Where training and inference containers run: kubernetes (a pod per "
                        "attempt, KubernetesPodOperator) or local (a process on the worker, for development "
                        "and CI). Empty: the MLREPO_RUNNER environment variable, else kubernetes.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "local",
                        "default": "",
                    },
                    "webhook_secret": {
                        "description": "Shared secret lakeFS sends in the X-Mlrepo-Webhook-Secret header. "
                        "When empty, the Airflow Variable named by webhook_secret_variable is used; when "
                        "neither is set, the receiver answers 503 to every call.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "",
                        "sensitive": True,
                    },
                    "webhook_secret_variable": {
                        "description": "Airflow Variable holding the shared secret when webhook_secret is empty.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "mlrepo_lakefs_webhook_secret",
                    },
                    "marquez_url": {
                        "description": 'Base URL of Marquez for the "Marquez run" extra link on training and '
                        "inference tasks. Empty: no link.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "http://marquez:5000",
                        "default": "",
                    },
                    "marquez_run_link_template": {
                        "description": 'Format of the "Marquez run" link; fields {marquez_url}, {namespace}, '
                        "{job} and {run_id} (percent-encoded). Default: the run in Marquez's API.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "{marquez_url}/lineage/job/{namespace}/{job}",
                        "default": "{marquez_url}/api/v1/jobs/runs/{run_id}",
                    },
                    "lineage_outbox_dir": {
                        "description": "Directory of the lineage outbox (OutboxTransport) when its outbox_dir "
                        "option is not set. On KubernetesExecutor or autoscaled Celery workers put it on a "
                        "persistent volume: events pending in a deleted pod's disk are lost. Default: "
                        "$AIRFLOW_HOME/mlrepo-lineage-outbox.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/var/lib/mlrepo/outbox",
                        "default": "",
                    },
                    "provenance_lakefs_conn_id": {
                        "description": 'lakeFS connection the "Provenance" tab of task instances (api-server '
                        "plugin) reads provenance through.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "lakefs_default",
                    },
                    "webhook_lakefs_conn_id": {
                        "description": "lakeFS connection the receiver uses to check which paths a commit "
                        "changed (only for assets with a path).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "lakefs_default",
                    },
                },
            }
        },
    }
