"""Example airflow-mlrepo containers: a Spark MLlib pipeline, persisted as a Spark ML model directory.

``python -m mlrepo_spark.train`` and ``python -m mlrepo_spark.predict`` follow the container
contract (docs/reference/container-contract.md). Spark runs in local mode inside the container
(``local[1]``: one core, deterministic partitioning). No Airflow inside.
"""

from __future__ import annotations
