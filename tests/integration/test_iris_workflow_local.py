"""The iris workflow through the operators (local runner, real `airflow dags test`, real lakeFS):
train on a pinned training commit, predict on a pinned input commit with that model, predict again
with `as_of` and get byte-identical predictions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.dag_runs import run_dag


@pytest.fixture
def iris_repos(hook: LakeFSHook) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"iris-{kind}-{suffix}" for kind in ("train", "input", "models", "predictions")}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


def test_train_then_predict_with_pins_and_reproducible_predictions(
    hook: LakeFSHook, iris_repos: dict[str, str], airflow_metadata_db: str
) -> None:
    repos = iris_repos
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    train_commit = hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    input_commit = hook.commit(repos["input"], "main", "input batch 1")
    first_run = datetime.now(timezone.utc)

    trained = run_dag(
        "train",
        first_run,
        inputs={"training_data": f"lakefs://{repos['train']}/main/data/"},
        output_location=f"lakefs://{repos['models']}/main/model/",
        hyperparameters={"C": 1.0},
        image="airflow-mlrepo/iris:0.1",
        cmds=["python", "-m", "mlrepo_iris.train"],
    )
    assert trained.state == "success", trained.output[-4000:]
    model_commit = hook.get_commit(repos["models"], "main")
    assert model_commit.metadata["mlrepo.input.training_data"] == f"lakefs://{repos['train']}/{train_commit.id}/data/"
    assert {o.path for o in hook.list_objects(repos["models"], "main", "model/")} >= {
        "model/model.pkl",
        "model/metrics.json",
    }

    predict_kwargs = {
        "inputs": {"input_data": f"lakefs://{repos['input']}/main/batches/"},
        "model": f"lakefs://{repos['models']}/main/model/",
        "output_location": f"lakefs://{repos['predictions']}/main/predictions/",
        "image": "airflow-mlrepo/iris:0.1",
        "cmds": ["python", "-m", "mlrepo_iris.predict"],
    }
    # the inference run stands for a time after the model was committed
    predict_time = datetime.now(timezone.utc)
    predicted = run_dag("predict", predict_time, model_version="latest", **predict_kwargs)
    assert predicted.state == "success", predicted.output[-4000:]
    first = hook.get_commit(repos["predictions"], "main")
    meta = first.metadata
    assert meta["mlrepo.model.commit_id"] == model_commit.id
    assert meta["mlrepo.input.input_data"] == f"lakefs://{repos['input']}/{input_commit.id}/batches/"
    assert meta["mlrepo.output_kind"] == "predictions"
    first_predictions = hook.read_object_bytes(repos["predictions"], first.id, "predictions/predictions.csv")
    assert first_predictions.startswith(b"id,species")

    # new training data and new input arrive later; reproduce the first prediction with as_of pins
    hook.upload_object(repos["train"], "main", "data/iris-part-2.csv", seed.training_csv(2, 2))
    hook.commit(repos["train"], "main", "training data part 2", date=int(predict_time.timestamp()) + 3600)
    hook.upload_object(repos["input"], "main", "batches/batch-2.csv", seed.inference_csv(2, 3))
    hook.commit(repos["input"], "main", "input batch 2", date=int(predict_time.timestamp()) + 3600)
    again = run_dag("predict", predict_time, model_version="as_of", **predict_kwargs)
    assert again.state == "success", again.output[-4000:]
    second = hook.get_commit(repos["predictions"], "main")
    assert second.metadata["mlrepo.input.input_data"] == meta["mlrepo.input.input_data"]
    assert second.metadata["mlrepo.model.commit_id"] == model_commit.id
    assert second.metadata["mlrepo.model.policy"] == "as_of"
    assert hook.read_object_bytes(repos["predictions"], second.id, "predictions/predictions.csv") == first_predictions
    assert hook.read_object_bytes(repos["predictions"], second.id, "predictions/summary.json") == (
        hook.read_object_bytes(repos["predictions"], first.id, "predictions/summary.json")
    )
