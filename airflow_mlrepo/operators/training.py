"""``LakeFSTrainingOperator``: train on pinned lakeFS data, commit the model atomically with provenance."""

from __future__ import annotations

from airflow_mlrepo.operators.pod import LakeFSPodOperator


class LakeFSTrainingOperator(LakeFSPodOperator):
    """Train a model in a container against pinned training-data commits.

    ``inputs`` are the training data (e.g. ``{"training_data": "lakefs://iris-train/main/data/"}``),
    ``output_location`` is where the model lands (e.g. ``lakefs://iris-models/main/model/``). Everything else
    is :class:`~airflow_mlrepo.operators.pod.LakeFSPodOperator`.
    """

    output_kind = "model"
