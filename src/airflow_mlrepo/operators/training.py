"""``LakeFSTrainingOperator``: train on pinned lakeFS data, commit the model atomically with provenance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlrepo.operators.pod import LakeFSPodOperator
from airflow_mlrepo.provenance import MODEL_FORMAT_KEY, MODEL_FRAMEWORK_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_mlrepo.operators.pod import AttemptPlan

__all__ = ["MODEL_FORMAT_KEY", "MODEL_FRAMEWORK_KEY", "LakeFSTrainingOperator"]


class LakeFSTrainingOperator(LakeFSPodOperator):
    """Train a model in a container against pinned training-data commits.

    ``inputs`` are the training data (e.g. ``{"training_data": "lakefs://iris-train/main/data/"}``),
    ``output_location`` is where the model lands (e.g. ``lakefs://iris-models/main/model/``). Everything else
    is :class:`~airflow_mlrepo.operators.pod.LakeFSPodOperator`.

    :param framework: what trains the model, e.g. ``tensorflow``, ``spark-mllib``, ``h2o``. Recorded on the
        model commit as ``mlrepo.model.framework`` (and so available to lineage). Templated.
    :param model_format: the format of the model files, e.g. ``pickle``, ``keras``, ``pmml``, ``h2o-pojo``.
        Recorded on the model commit as ``mlrepo.model.format``. Templated.
    """

    template_fields: Sequence[str] = (*LakeFSPodOperator.template_fields, "framework", "model_format")
    output_kind = "model"

    def __init__(self, *, framework: str | None = None, model_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.framework = framework
        self.model_format = model_format

    def model_description(self) -> dict[str, str]:
        """The model commit's framework and format keys (only those that are set)."""
        described = {MODEL_FRAMEWORK_KEY: self.framework, MODEL_FORMAT_KEY: self.model_format}
        return {key: str(value).strip() for key, value in described.items() if value and str(value).strip()}

    def provenance(self, context: Context, plan: AttemptPlan) -> dict[str, str]:
        return {**super().provenance(context, plan), **self.model_description()}
