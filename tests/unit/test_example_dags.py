"""Every example DAG imports cleanly with the provider installed (they are run by integration and e2e tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset, AssetOrTimeSchedule

from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.revert import LakeFSRevertOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

DAGS = Path(__file__).resolve().parents[2] / "dags"


def assets_of(condition: Any) -> list[Asset]:
    """The Assets of a schedule condition (an Asset, or ``AssetAny``/``AssetAll`` of them)."""
    if isinstance(condition, Asset):
        return [condition]
    return [asset for part in condition.objects for asset in assets_of(part)]


@pytest.fixture(scope="module")
def bag() -> DagBag:
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


def test_example_dags_import_without_errors(bag: DagBag) -> None:
    assert set(bag.dag_ids) >= {"iris_daily", "iris_training", "iris_inference", "iris_backtest", "iris_revert"}
    dag = bag.dags["iris_daily"]
    assert [t.task_id for t in dag.topological_sort()] == ["train", "predict"]


def test_training_is_event_driven_and_backfillable_and_publishes_the_model(bag: DagBag) -> None:
    dag = bag.dags["iris_training"]
    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    (training_data,) = assets_of(schedule.asset_condition)
    assert training_data.uri == "lakefs://iris-train/main/data"
    (watcher,) = training_data.watchers
    assert isinstance(watcher.trigger, LakeFSCommitEventTrigger)
    train = dag.get_task("train")
    assert isinstance(train, LakeFSTrainingOperator)
    assert train.output_location == "lakefs://iris-models/main/model/"
    assert [o.uri for o in train.outlets if isinstance(o, Asset)] == ["lakefs://iris-models/main/model"]
    assert dag.render_template_as_native_obj  # params.C reaches the container as a number


def test_inference_runs_on_new_input_or_a_new_model_with_the_model_param(bag: DagBag) -> None:
    dag = bag.dags["iris_inference"]
    uris = sorted(a.uri for a in assets_of(dag.timetable.asset_condition))  # type: ignore[attr-defined]
    assert uris == ["lakefs://iris-input/main/batches", "lakefs://iris-models/main/model"]
    predict = dag.get_task("predict")
    assert isinstance(predict, LakeFSInferenceOperator)
    assert predict.model_version == "{{ params.model_version }}"
    assert dag.params["model_version"] == "latest"
    assert [t.task_id for t in dag.topological_sort()] == ["model_and_input_exist", "predict"]


def test_backtest_maps_predict_over_input_commits_and_reports(bag: DagBag) -> None:
    dag = bag.dags["iris_backtest"]
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "predict", "report"]
    assert set(dag.params.keys()) == {"model_version", "start", "end"}


def test_revert_reverts_the_model_or_the_training_data(bag: DagBag) -> None:
    dag = bag.dags["iris_revert"]
    model = dag.get_task("revert_model")
    data = dag.get_task("revert_training_data")
    assert isinstance(model, LakeFSRevertOperator)
    assert isinstance(data, LakeFSRevertOperator)
    assert (model.repository, data.repository) == ("iris-models", "iris-train")
    assert [o.uri for o in model.outlets if isinstance(o, Asset)] == ["lakefs://iris-models/main/model"]


def test_repository_names_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREPO_IRIS_REPO_PREFIX", "acme")
    monkeypatch.setenv("MLREPO_IRIS_BRANCH", "prod")
    dag = DagBag(dag_folder=str(DAGS / "iris_inference.py")).dags["iris_inference"]
    predict = dag.get_task("predict")
    assert predict.model == "lakefs://acme-models/prod/model/"  # type: ignore[attr-defined]
    assert predict.output_location == "lakefs://acme-predictions/prod/predictions/"  # type: ignore[attr-defined]


def test_batch_scoring_is_a_datum_pipeline_fanned_out_over_mapped_tasks(bag: DagBag) -> None:
    from airflow_mlrepo.operators.datums import (
        LakeFSDatumBatchOperator,
        LakeFSDatumCommitOperator,
        LakeFSDatumPlanOperator,
    )

    dag = bag.dags["iris_batch_scoring"]
    assert [t.task_id for t in dag.topological_sort()] == ["score.plan", "score.process", "score.commit"]
    plan, process, commit = (dag.get_task(f"score.{name}") for name in ("plan", "process", "commit"))
    assert isinstance(plan, LakeFSDatumPlanOperator)
    assert plan.spec.describe() == {"inputs": [{"name": "input_data", "glob": "/*"}], "cross": ["model"]}
    assert plan.input_locations == {"input_data": "lakefs://iris-input/main/records/"}
    assert process.operator_class is LakeFSDatumBatchOperator  # type: ignore[attr-defined]
    assert process.max_active_tis_per_dagrun == 4
    assert isinstance(commit, LakeFSDatumCommitOperator)
    assert commit.trigger_rule == "all_done"
