"""Iris revert: undo a bad model or a bad training-data commit; everything downstream follows.

Trigger it by hand with ``what`` and, optionally, ``commit`` (default: the branch head):

* ``what=model`` reverts the commit on the models branch: its head is the previous model again. The
  ``model`` Asset is updated, so ``iris_inference`` runs at once with that model, and so do later
  and cleared inference runs that use ``model_version=latest``.
* ``what=training_data`` reverts the commit on the training branch. The revert is a new commit under
  ``data/``, so ``iris_training``'s watcher starts a retrain without that data, whose new model in turn
  starts ``iris_inference``.

lakeFS keeps history: the reverted commit stays readable by id, and the revert commit records who
reverted what (``mlrepo.reverted_commit`` and the Airflow run in its metadata).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, Param, task

from airflow_mlrepo.operators.revert import LakeFSRevertOperator

REPO_PREFIX = os.environ.get("MLREPO_IRIS_REPO_PREFIX", "iris")
BRANCH = os.environ.get("MLREPO_IRIS_BRANCH", "main")
TRAIN_REPO = f"{REPO_PREFIX}-train"
MODELS_REPO = f"{REPO_PREFIX}-models"

model = Asset(f"lakefs://{MODELS_REPO}/{BRANCH}/model")

with DAG(
    dag_id="iris_revert",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "what": Param("model", enum=["model", "training_data"], description="which branch to revert on"),
        "commit": Param("", type="string", description="commit to undo (id or tag); empty: the branch head"),
    },
    tags=["mlrepo", "iris"],
) as dag:

    @task.branch
    def choose(params: dict[str, str] | None = None) -> str:
        return "revert_model" if (params or {}).get("what") == "model" else "revert_training_data"

    revert_model = LakeFSRevertOperator(
        task_id="revert_model",
        repository=MODELS_REPO,
        branch=BRANCH,
        commit="{{ params.commit }}",
        paths=["model"],
        outlets=[model],
    )
    revert_training_data = LakeFSRevertOperator(
        task_id="revert_training_data",
        repository=TRAIN_REPO,
        branch=BRANCH,
        commit="{{ params.commit }}",
        paths=["data"],
    )
    choose() >> [revert_model, revert_training_data]
