"""LakeFSTrainingOperator records the model's framework and format on the model commit."""

from __future__ import annotations

from airflow_mlrepo.operators.training import MODEL_FORMAT_KEY, MODEL_FRAMEWORK_KEY, LakeFSTrainingOperator


def training(**kwargs: str) -> LakeFSTrainingOperator:
    return LakeFSTrainingOperator(
        task_id="train", output_location="lakefs://models/main/model/", image="example:1", cmds=["true"], **kwargs
    )


def test_framework_and_format_become_model_commit_metadata() -> None:
    operator = training(framework="tensorflow", model_format="keras")
    assert operator.model_description() == {MODEL_FRAMEWORK_KEY: "tensorflow", MODEL_FORMAT_KEY: "keras"}
    assert (MODEL_FRAMEWORK_KEY, MODEL_FORMAT_KEY) == ("mlrepo.model.framework", "mlrepo.model.format")


def test_unset_or_blank_values_add_no_keys() -> None:
    assert training().model_description() == {}
    assert training(framework="  ", model_format="pmml").model_description() == {MODEL_FORMAT_KEY: "pmml"}


def test_framework_and_format_are_templated() -> None:
    assert {"framework", "model_format"} <= set(LakeFSTrainingOperator.template_fields)
