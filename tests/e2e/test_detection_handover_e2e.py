"""What starts a run is what the run reads, in a real Airflow (scheduler, triggerer, LocalExecutor) on the
real lakeFS.

* sensor -> training -> inference: the model is trained on exactly the commit the sensor reported
  (not the head as of the run's logical date), the prediction reads that model, and a cleared run
  pins the same commit again;
* two retrains in quick succession: each model's outlet asset event carries its commit, and the
  inference run each one starts predicts with that model, even when the newer model has landed
  before the older one's inference task runs.
"""

from __future__ import annotations

import sys
import urllib.parse
from typing import Any

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.e2e.conftest import AirflowE2E, dump, lakefs_facts, new_dag_id, published_output
from tests.integration.dag_runs import COPY_JOB

PYTHON = sys.executable

CHAIN_DAG = """
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.sensors.lakefs import LakeFSCommitSensor

with DAG(dag_id={dag_id}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    wait = LakeFSCommitSensor(
        task_id="wait_for_data", repository={data}, branch="main", prefixes=["data/"],
        deferrable=True, poke_interval=2, timeout=600,
        # Airflow 3.3 can fail a deferred task whose trigger fires within seconds on the stale
        # "success" of its deferring process (apache/airflow#72716); a retry reuses the baseline.
        retries=1, retry_delay=timedelta(seconds=1),
    )
    train = LakeFSTrainingOperator(
        task_id="train", inputs={{"training_data": "lakefs://" + {data} + "/main/data/"}},
        output_location="lakefs://" + {models} + "/main/model/", image="e2e/copy:1",
        cmds=[{python}, {copy_job}], runner="local",
    )
    predict = LakeFSInferenceOperator(
        task_id="predict", inputs={{"input_data": "lakefs://" + {data} + "/main/data/"}},
        model="lakefs://" + {models} + "/main/model/",
        output_location="lakefs://" + {predictions} + "/main/predictions/", image="e2e/copy:1",
        cmds=[{python}, {copy_job}], runner="local",
    )
    wait >> train >> predict
"""

PRODUCER_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Asset

from airflow_mlrepo.operators.training import LakeFSTrainingOperator

with DAG(dag_id={dag_id}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False,
         max_active_runs=1, params={{"C": 1}}):
    LakeFSTrainingOperator(
        task_id="train", inputs={{"training_data": "lakefs://" + {data} + "/main/data/"}},
        output_location="lakefs://" + {models} + "/main/model/", image="e2e/copy:1",
        hyperparameters={{"C": "{{{{ params.C }}}}"}},
        cmds=[{python}, {copy_job}], runner="local", outlets=[Asset("lakefs://" + {models} + "/main/model")],
    )
"""

CONSUMER_DAG = """
from __future__ import annotations

import time
from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, task

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.pinning import asset_event_commits

MODEL = Asset("lakefs://" + {models} + "/main/model")

with DAG(dag_id={dag_id}, schedule=[MODEL], start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False,
         max_active_runs=4):

    @task
    def until_both_models_landed(**context):
        # Under load a newer model lands before this run's prediction starts; make that certain.
        hook = LakeFSHook()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            log = hook.log_commits({models}, "main", first_parent=True, amount=50)
            if sum(c.metadata.get("mlrepo.output_kind") == "model" for c in log) >= 2:
                break
            time.sleep(1)
        return asset_event_commits(context, {models}, "main")

    predict = LakeFSInferenceOperator(
        task_id="predict", inputs={{"input_data": "lakefs://" + {data} + "/main/data/"}},
        model="lakefs://" + {models} + "/main/model/", model_version="latest",
        output_location="lakefs://" + {predictions} + "/main/predictions/", image="e2e/copy:1",
        cmds=[{python}, {copy_job}], runner="local",
    )
    until_both_models_landed() >> predict
"""


def _quoted(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _repos(hook: LakeFSHook, *names: str) -> list[str]:
    for name in names:
        hook.create_repository(name, f"local://{name}")
    return list(names)


def test_sensor_training_inference_chain_pins_what_the_sensor_saw_also_after_a_clear(
    airflow_e2e: AirflowE2E, hook: LakeFSHook
) -> None:
    dag_id = new_dag_id("e2e_chain")
    data, models, predictions = _repos(
        hook, f"{dag_id}-d".replace("_", "-"), f"{dag_id}-m".replace("_", "-"), f"{dag_id}-p".replace("_", "-")
    )
    try:
        hook.upload_object(data, "main", "data/old.csv", b"old\n")
        hook.commit(data, "main", "data before the run")
        airflow_e2e.write_dag(
            dag_id,
            CHAIN_DAG.format(
                dag_id=dump(dag_id),
                data=dump(data),
                models=dump(models),
                predictions=dump(predictions),
                python=dump(PYTHON),
                copy_job=dump(COPY_JOB),
            ),
        )
        # A manual run with a logical date before the data lands: "as of the logical date" is stale data.
        run = airflow_e2e.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
        run_id = run["dag_run_id"]
        airflow_e2e.wait_for(
            "the sensor to defer",
            lambda: airflow_e2e.task_instance(dag_id, run_id, "wait_for_data")["state"] == "deferred",
        )
        hook.upload_object(data, "main", "data/new.csv", b"new\n")
        new = hook.commit(data, "main", "new data")
        assert airflow_e2e.wait_for_run_state(dag_id, run_id, ("success", "failed"), 240) == "success"

        sensed = airflow_e2e.xcom(dag_id, run_id, "wait_for_data")
        assert [c["id"] for c in sensed] == [new.id]
        trained = published_output(airflow_e2e, hook, dag_id, run_id, "train")
        assert trained.pin("training_data") == (new.id, "sensor")
        model = hook.get_commit(models, trained.commit_id)
        assert model.metadata["mlrepo.input.training_data"] == f"lakefs://{data}/{new.id}/data/"
        assert hook.read_object_bytes(models, model.id, "model/training_data-0.txt") == b"NEW\nOLD\n"
        predicted = published_output(airflow_e2e, hook, dag_id, run_id, "predict")
        assert predicted.pin("input_data")[0] == new.id
        assert predicted.pin("model")[0] == model.id

        # Newer data, then clear the whole run: the sensor replays, training pins the same commit.
        hook.upload_object(data, "main", "data/newer.csv", b"newer\n")
        hook.commit(data, "main", "newer data, after the run")
        airflow_e2e.send("POST", f"/dags/{dag_id}/dagRuns/{_quoted(run_id)}/clear", {"dry_run": False})
        airflow_e2e.wait_for(
            "the cleared run to run again",
            lambda: airflow_e2e.task_instance(dag_id, run_id, "train")["try_number"] >= 2,
            240,
        )
        assert airflow_e2e.wait_for_run_state(dag_id, run_id, ("success", "failed"), 240) == "success"
        again = published_output(airflow_e2e, hook, dag_id, run_id, "train")
        assert again.pin("training_data")[0] == new.id
        assert again.commit_id == trained.commit_id  # the same work: found by its fingerprint
    finally:
        for name in (data, models, predictions):
            hook.delete_repository(name, missing_ok=True)


def test_two_quick_retrains_each_start_inference_with_their_own_model(
    airflow_e2e: AirflowE2E, hook: LakeFSHook
) -> None:
    producer, consumer = new_dag_id("e2e_retrain"), new_dag_id("e2e_infer")
    data, models, predictions = _repos(
        hook, f"{producer}-d".replace("_", "-"), f"{producer}-m".replace("_", "-"), f"{producer}-p".replace("_", "-")
    )
    names = {
        "data": dump(data),
        "models": dump(models),
        "predictions": dump(predictions),
        "python": dump(PYTHON),
        "copy_job": dump(COPY_JOB),
    }
    try:
        hook.upload_object(data, "main", "data/a.csv", b"a\n")
        hook.commit(data, "main", "training data")
        airflow_e2e.write_dag(consumer, CONSUMER_DAG.format(dag_id=dump(consumer), **names))
        airflow_e2e.write_dag(producer, PRODUCER_DAG.format(dag_id=dump(producer), **names))
        for c in (1, 2):  # two retrains, queued back to back
            airflow_e2e.send("POST", f"/dags/{producer}/dagRuns", {"logical_date": None, "conf": {"C": c}})

        def finished(dag_id: str, count: int) -> list[dict[str, Any]] | None:
            runs = airflow_e2e.dag_runs(dag_id)
            done = [r for r in runs if r["state"] in ("success", "failed")]
            return done if len(done) >= count and len(done) == len(runs) else None

        retrains = airflow_e2e.wait_for("both retrains", lambda: finished(producer, 2), 300, interval=2.0)
        assert [r["state"] for r in retrains] == ["success", "success"]
        model_commits = [
            published_output(airflow_e2e, hook, producer, r["dag_run_id"], "train").commit_id for r in retrains
        ]
        assert len(set(model_commits)) == 2
        runs = airflow_e2e.wait_for("the inference runs", lambda: finished(consumer, 1), 300, interval=2.0)
        airflow_e2e.wait_for(
            "every model event consumed",
            lambda: (
                len(
                    {
                        lakefs_facts(e)["commit_id"]
                        for r in airflow_e2e.dag_runs(consumer)
                        for e in airflow_e2e.upstream_events(consumer, r["dag_run_id"])
                    }
                )
                == 2
                and finished(consumer, 1)
            ),
            300,
            interval=2.0,
        )
        runs = airflow_e2e.dag_runs(consumer)
        used = {}
        for run in runs:
            assert airflow_e2e.wait_for_run_state(consumer, run["dag_run_id"], ("success", "failed"), 300) == "success"
            events = airflow_e2e.upstream_events(consumer, run["dag_run_id"])
            facts = [lakefs_facts(e) for e in events]
            assert all({"repository", "branch", "commit_id", "path"} <= set(f) for f in facts), facts
            assert {f["repository"] for f in facts} == {models}
            newest = sorted(events, key=lambda e: e["timestamp"])[-1]
            predicted = published_output(airflow_e2e, hook, consumer, run["dag_run_id"], "predict")
            used[run["dag_run_id"]], rule = predicted.pin("model")
            assert used[run["dag_run_id"]] == lakefs_facts(newest)["commit_id"]
            assert rule == "asset_event"
        assert model_commits[0] in used.values() or len(runs) == 1
    finally:
        for name in (data, models, predictions):
            hook.delete_repository(name, missing_ok=True)
