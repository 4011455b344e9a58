"""Example airflow-mlrepo containers: a Keras iris classifier, persisted in Keras' native ``.keras`` format.

``python -m mlrepo_tensorflow.train`` and ``python -m mlrepo_tensorflow.predict`` follow the
container contract (docs/reference/container-contract.md), like ``mlrepo_iris``. No Airflow inside.
"""

from __future__ import annotations
