"""airflow-mlrepo: reproducible ML pipelines on Airflow 3, lakeFS, Kubernetes and OpenLineage."""

from __future__ import annotations

__version__ = "0.1.0"
