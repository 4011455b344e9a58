"""Iris inference: predict whenever new input data is committed or a new model is published.

Runs on either of two Assets: a commit under ``batches/`` on the input branch (an ``AssetWatcher``
polls the branch head) or an update of the ``model`` Asset (``iris_training`` and ``iris_revert``
publish it). The input is pinned to the commit of the triggering event (a run started by a new model
reads the input branch head as of the run), so clearing an old run reads the same input again.
``model_version`` chooses the model: ``latest`` (default: the models branch head when the task runs,
so a cleared run recomputes with today's model), ``as_of`` (the head when the run was created:
reproduce what ran then), or a commit id or tag. The predictions for the whole input are committed
to ``predictions/`` with provenance (input commit, model commit, policy, run).

Repositories: ``<prefix>-input`` (CSVs under ``batches/``), ``<prefix>-models`` and
``<prefix>-predictions``; prefix ``$MLREPO_IRIS_REPO_PREFIX`` (default ``iris``), branch
``$MLREPO_IRIS_BRANCH`` (default ``main``).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, AssetWatcher, Param, task

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

REPO_PREFIX = os.environ.get("MLREPO_IRIS_REPO_PREFIX", "iris")
BRANCH = os.environ.get("MLREPO_IRIS_BRANCH", "main")
POLL_SECONDS = float(os.environ.get("MLREPO_IRIS_POLL_SECONDS", "30"))
INPUT_REPO = f"{REPO_PREFIX}-input"
MODELS_REPO = f"{REPO_PREFIX}-models"
PREDICTIONS_REPO = f"{REPO_PREFIX}-predictions"
IMAGE = "ghcr.io/airflow-mlrepo/iris:0.1.0"

input_data = Asset(
    f"lakefs://{INPUT_REPO}/{BRANCH}/batches",
    watchers=[
        AssetWatcher(
            name=f"{INPUT_REPO}-{BRANCH}-batches",
            trigger=LakeFSCommitEventTrigger(
                repository=INPUT_REPO, branch=BRANCH, prefixes=["batches/"], poll_interval=POLL_SECONDS
            ),
        )
    ],
)
model = Asset(f"lakefs://{MODELS_REPO}/{BRANCH}/model")

with DAG(
    dag_id="iris_inference",
    schedule=(input_data | model),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    params={"model_version": Param("latest", type="string", description="latest, as_of, or a commit id or tag")},
    tags=["mlrepo", "iris"],
) as dag:

    @task.short_circuit
    def model_and_input_exist() -> bool:
        """Skip (not fail) until both a model and some input data have been committed."""
        hook = LakeFSHook()
        return all(
            any(True for _ in hook.list_objects(repository, BRANCH, prefix))
            for repository, prefix in ((MODELS_REPO, "model/"), (INPUT_REPO, "batches/"))
        )

    predict = LakeFSInferenceOperator(
        task_id="predict",
        inputs={"input_data": f"lakefs://{INPUT_REPO}/{BRANCH}/batches/"},
        model=f"lakefs://{MODELS_REPO}/{BRANCH}/model/",
        model_version="{{ params.model_version }}",
        output_location=f"lakefs://{PREDICTIONS_REPO}/{BRANCH}/predictions/",
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.predict"],
        namespace="ml",
    )
    model_and_input_exist() >> predict
