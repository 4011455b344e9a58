"""Example airflow-mlrepo containers: an iris classifier trained and applied on lakeFS data.

``python -m mlrepo_iris.train`` and ``python -m mlrepo_iris.predict`` follow the container contract
(docs/reference/container-contract.md): inputs, output and lakeFS access come from environment
variables, outputs are uploaded to the attempt branch and never committed. No Airflow inside.
"""

from __future__ import annotations
