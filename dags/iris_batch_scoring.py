"""Iris batch scoring with datums: each input file is a datum, only new or changed files are scored.

Pachyderm's classic ML pipeline on Airflow + lakeFS (docs/concepts/datums.md): the input
``records/`` is cut by the glob ``/*`` (each top-level file is a datum), the model is a cross input
every datum sees whole. A run scores only the datums added or changed since the input commit of the
last published output, removes the predictions of deleted files, and scores everything again when
the model (or the image, command or parameters) changed, or when ``reprocess_spec`` is
``every_job``. The datums are fanned out over mapped tasks, ``datums_per_task`` at a time, at most
``parallelism`` at once, each retried on its own; one commit publishes them all on
``scored/<file>/predictions.csv``. ``$MLREPO_SCORING_DATUMS_PER_TASK`` sets the batch size (default 10).

Runs on a commit under ``records/`` of the input branch (an ``AssetWatcher``) or a new model.
Repositories: ``<prefix>-input``, ``<prefix>-models``, ``<prefix>-predictions``; prefix
``$MLREPO_IRIS_REPO_PREFIX`` (default ``iris``), branch ``$MLREPO_IRIS_BRANCH`` (default ``main``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Asset, AssetWatcher, Param

from airflow_mlrepo.operators.datums import datum_pipeline, pfs
from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

REPO_PREFIX = os.environ.get("MLREPO_IRIS_REPO_PREFIX", "iris")
BRANCH = os.environ.get("MLREPO_IRIS_BRANCH", "main")
POLL_SECONDS = float(os.environ.get("MLREPO_IRIS_POLL_SECONDS", "30"))
DATUMS_PER_TASK = int(os.environ.get("MLREPO_SCORING_DATUMS_PER_TASK", "10"))
INPUT_REPO = f"{REPO_PREFIX}-input"
MODELS_REPO = f"{REPO_PREFIX}-models"
PREDICTIONS_REPO = f"{REPO_PREFIX}-predictions"

records = Asset(
    f"lakefs://{INPUT_REPO}/{BRANCH}/records",
    watchers=[
        AssetWatcher(
            name=f"{INPUT_REPO}-{BRANCH}-records",
            trigger=LakeFSCommitEventTrigger(
                repository=INPUT_REPO, branch=BRANCH, prefixes=["records/"], poll_interval=POLL_SECONDS
            ),
        )
    ],
)
model = Asset(f"lakefs://{MODELS_REPO}/{BRANCH}/model")

with DAG(
    dag_id="iris_batch_scoring",
    schedule=(records | model),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    params={
        "model_version": Param("latest", type="string", description="latest, as_of, or a commit id or tag"),
        "reprocess_spec": Param("until_success", enum=["until_success", "every_job"]),
    },
    tags=["mlrepo", "iris", "datums"],
) as dag:
    # --8<-- [start:pipeline]
    score = datum_pipeline(
        group_id="score",
        input=pfs("input_data", f"lakefs://{INPUT_REPO}/{BRANCH}/records/", glob="/*"),
        model=f"lakefs://{MODELS_REPO}/{BRANCH}/model/",
        model_version="{{ params.model_version }}",
        output_location=f"lakefs://{PREDICTIONS_REPO}/{BRANCH}/scored/",
        image="ghcr.io/airflow-mlrepo/iris:0.1.0",
        cmds=["python", "-m", "mlrepo_iris.predict_datums"],
        reprocess_spec="{{ params.reprocess_spec }}",
        datums_per_task=DATUMS_PER_TASK,
        parallelism=4,
        namespace="ml",
    )
    # --8<-- [end:pipeline]
