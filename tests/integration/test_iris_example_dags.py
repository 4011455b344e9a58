"""The example DAGs in ``dags/`` as they are, run with the real ``airflow dags test`` on the real lakeFS.

Train (with a run param), predict, backtest an explicit date range on a branch of its own, revert the
model. The DAG files are copied unchanged into the session's dags folder; their
repository prefix comes from ``MLREPO_IRIS_REPO_PREFIX`` in the ``airflow`` process environment.
(Scheduling on commits, clears and backfills by a real scheduler are in ``tests/e2e``.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.integration.dag_runs import AIRFLOW, DagRunResult, session_home

EXAMPLES = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = ("iris_training.py", "iris_inference.py", "iris_backtest.py", "iris_revert.py")


@pytest.fixture
def iris(hook: LakeFSHook, airflow_metadata_db: str) -> Iterator[str]:
    prefix = f"ex-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{kind}" for kind in ("train", "input", "models", "predictions")]
    for name in names:
        hook.create_repository(name, f"local://{name}")
    home = session_home()
    home.dags_folder.mkdir(parents=True, exist_ok=True)
    for name in DAG_FILES:
        shutil.copy(EXAMPLES / name, home.dags_folder / name)
    yield prefix
    for name in DAG_FILES:
        (home.dags_folder / name).unlink(missing_ok=True)
    for name in names:
        hook.delete_repository(name, missing_ok=True)


def dags_test(
    prefix: str, dag_id: str, when: datetime | None = None, conf: dict[str, object] | None = None
) -> DagRunResult:
    home = session_home()
    env = {**home.env(), "MLREPO_IRIS_REPO_PREFIX": prefix, "AIRFLOW__MLREPO__RUNNER": "local"}
    command = [AIRFLOW, "dags", "test", dag_id]
    if when is not None:
        command.append(when.isoformat())
    if conf is not None:
        command += ["-c", json.dumps(conf)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    return DagRunResult(dag_id, result.returncode, result.stdout + result.stderr)


def test_train_predict_backtest_revert_with_the_example_dags(hook: LakeFSHook, iris: str) -> None:
    train_repo, input_repo, models_repo, predictions_repo = (
        f"{iris}-{kind}" for kind in ("train", "input", "models", "predictions")
    )
    hook.upload_object(train_repo, "main", "data/part-1.csv", seed.training_csv(1, 3))
    hook.commit(train_repo, "main", "training data part 1")
    hook.upload_object(input_repo, "main", "batches/batch-1.csv", seed.inference_csv(1, 2))
    first_input = hook.commit(input_repo, "main", "input batch 1")

    # A manual run with a param: {{ params.C }} reaches the container as a number.
    trained = dags_test(iris, "iris_training", datetime.now(timezone.utc) + timedelta(seconds=1), {"C": 0.05})
    assert trained.state == "success", trained.output[-5000:]
    model = hook.get_commit(models_repo, "main")
    assert model.metadata["mlrepo.dag_id"] == "iris_training"
    assert json.loads(model.metadata["mlrepo.hyperparameters"]) == {"C": 0.05}
    metrics = json.loads(hook.read_object_bytes(models_repo, model.id, "model/metrics.json"))
    assert metrics["hyperparameters"]["C"] == 0.05

    predicted = dags_test(iris, "iris_inference")
    assert predicted.state == "success", predicted.output[-5000:]
    predictions = hook.get_commit(predictions_repo, "main")
    assert predictions.metadata["mlrepo.model.commit_id"] == model.id
    assert predictions.metadata["mlrepo.input.input_data"] == f"lakefs://{input_repo}/{first_input.id}/batches/"

    # Backtest the model by commit id over an explicit range (params start/end) holding the input commit.
    start = first_input.created_at - timedelta(seconds=1)
    end = datetime.now(timezone.utc) + timedelta(seconds=1)
    conf = {"model_version": model.id, "start": start.isoformat(), "end": end.isoformat()}
    backtest = dags_test(iris, "iris_backtest", conf=conf)
    assert backtest.state == "success", backtest.output[-5000:]
    (branch,) = hook.list_branches(predictions_repo, "backtest-")
    report_commit = hook.get_commit(predictions_repo, branch)
    assert report_commit.metadata["mlrepo.output_kind"] == "backtest_report"
    assert report_commit.metadata["mlrepo.backtest.model_commit_ids"] == model.id
    assert report_commit.metadata["mlrepo.backtest.input_commits"] == first_input.id
    report = json.loads(hook.read_object_bytes(predictions_repo, branch, "backtest/report.json"))
    (entry,) = report["inputs"]
    assert [(p["role"], p["model_commit"]) for p in entry["predictions"]] == [
        ("backtested", model.id),
        ("earlier", model.id),
    ]
    assert report["models"][model.id]["agreement_with_backtested_model"] == 1.0
    assert report["models"][model.id]["training_accuracy"] > 0.5
    assert hook.get_commit(predictions_repo, "main").id == predictions.id  # main untouched

    # Revert the model: the models branch holds no model any more (the first model is the one reverted).
    reverted = dags_test(iris, "iris_revert", conf={"what": "model"})
    assert reverted.state == "success", reverted.output[-5000:]
    revert_commit = hook.get_commit(models_repo, "main")
    assert revert_commit.metadata["mlrepo.reverted_commit"] == model.id
    assert list(hook.list_objects(models_repo, "main", "model/")) == []
