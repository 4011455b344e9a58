"""Iris training: retrain whenever new training data is committed, and backfill over past days.

Runs when a commit under ``data/`` lands on the training branch (an ``AssetWatcher`` polls the branch
head) and once a day; the daily schedule is what makes the DAG backfillable from the UI or the REST
API. Each run pins its training data: an event-driven run to the commit that started it, a daily or
backfilled run to the branch head as of its data interval end. The model is committed atomically to
the models repository with provenance, and the ``model`` Asset is updated, which starts
``iris_inference``.

Repositories: ``<prefix>-train`` (CSVs under ``data/``) and ``<prefix>-models`` (``model/``), prefix
``$MLREPO_IRIS_REPO_PREFIX`` (default ``iris``), branch ``$MLREPO_IRIS_BRANCH`` (default ``main``).
Set ``[mlrepo] runner = local`` to run the container command as a local process.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, Param

from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

REPO_PREFIX = os.environ.get("MLREPO_IRIS_REPO_PREFIX", "iris")
BRANCH = os.environ.get("MLREPO_IRIS_BRANCH", "main")
POLL_SECONDS = float(os.environ.get("MLREPO_IRIS_POLL_SECONDS", "30"))
TRAIN_REPO = f"{REPO_PREFIX}-train"
MODELS_REPO = f"{REPO_PREFIX}-models"
IMAGE = "ghcr.io/airflow-mlrepo/iris:0.1.0"

training_data = Asset(
    f"lakefs://{TRAIN_REPO}/{BRANCH}/data",
    watchers=[
        AssetWatcher(
            name=f"{TRAIN_REPO}-{BRANCH}-data",
            trigger=LakeFSCommitEventTrigger(
                repository=TRAIN_REPO, branch=BRANCH, prefixes=["data/"], poll_interval=POLL_SECONDS
            ),
        )
    ],
)
model = Asset(f"lakefs://{MODELS_REPO}/{BRANCH}/model")

with DAG(
    dag_id="iris_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=timedelta(days=1)),
        assets=training_data,
    ),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # {{ params.C }} reaches the container as a number
    params={
        "C": Param(1.0, type="number", exclusiveMinimum=0, description="inverse regularisation strength"),
        "publish_to": Param(
            "auto",
            enum=["auto", "target", "run_branch"],
            description="auto: backfills publish to a branch of their own, other runs to the models branch",
        ),
    },
    tags=["mlrepo", "iris"],
) as dag:
    train = LakeFSTrainingOperator(
        task_id="train",
        inputs={"training_data": f"lakefs://{TRAIN_REPO}/{BRANCH}/data/"},
        output_location=f"lakefs://{MODELS_REPO}/{BRANCH}/model/",
        hyperparameters={"C": "{{ params.C }}"},
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.train"],
        framework="scikit-learn",
        model_format="pickle",
        namespace="ml",
        # Backfilled runs publish to a branch of their own (backfill-iris_training-<run>), never to the
        # production branch, unless the run's param publish_to says "target"; a merge conflict fails
        # the attempt and its retry starts again from the branch's new head.
        publish_to="{{ params.publish_to }}",
        outlets=[model],
    )
