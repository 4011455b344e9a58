"""The ML workflow as users run it: the example DAGs of ``dags/`` in a real Airflow, on the real lakeFS.

Journeys of issue 6, in order, each building on the state the previous one left (one lakeFS
repository set and one set of DAGs per session):

1. commit training data -> ``iris_training`` runs (its watcher fires) -> model commit;
2. commit input data -> ``iris_inference`` runs with that model;
3. commit new training data -> retrain -> the inference the new model starts uses it, and so does the
   next input commit;
4. clear the historical inference run of journey 2 -> same input commit, new model, new prediction
   commit; the predictions branch shows the old and the new one for that run;
5. backfill ``iris_backtest`` through the REST API over past days with a model param -> a report
   per day committed on a backtest branch;
6. revert the model with ``iris_revert`` -> inference uses the previous model again; revert a bad
   training-data commit -> the watcher retrains without it;
   6b. bad data end to end: a mislabelled training commit trains a model that predicts; ``mlrepo
   provenance --downstream`` finds both and ``mlrepo recompute --dry-run`` names the prediction run it
   would clear; revert it, the watcher retrains and the new model's predictions replace the bad ones;
   ``mlrepo recompute`` then finds nothing left, and no current output derives from the bad commit;
7. Marquez's lineage matches (needs a running Marquez: skipped with the stack's reason here).

Commits carry past dates (lakeFS keeps any commit date given) so that past days hold data: the
training data from three and two days ago, the input batches from two days ago. Everything else is
real time: the triggerer's watchers see the commits, the scheduler makes the runs, the LocalExecutor
runs the tasks, and the tasks run the iris container commands as local processes, or, with
``MLREPO_RUNNER=kubernetes``, as pods of the iris image on the stack's Kubernetes cluster (add
``MLREPO_DEFERRABLE=true`` for deferrable pods): the same DAG files, only the stack's configuration differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mlrepo_devstack import stack
from mlrepo_devstack.stack import airflow_services
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from tests.e2e.conftest import AirflowE2E, IrisExample, lakefs_facts, published_output

RUN_TIMEOUT = 180.0
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
#: Days the data is dated on. Unpausing a DAG with a daily timetable and catchup=False starts a run for
#: the last midnight at once (Airflow's rule), so the backfill stays clear of today's date.
DAYS_AGO = {n: TODAY - timedelta(days=n) for n in (1, 2, 3)}


def at(day: datetime, hour: int) -> int:
    return int((day + timedelta(hours=hour)).timestamp())


@dataclass
class Journey:
    """What the journeys found so far (commit ids, run ids), shared in file order."""

    models: dict[str, str] = field(default_factory=dict)
    training: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


JOURNEY = Journey()


@pytest.fixture(scope="module")
def journey(iris_example: IrisExample) -> Journey:
    return JOURNEY


@pytest.fixture
def lakefs() -> LakeFSHook:
    return LakeFSHook()


# ------------------------------------------------------------------ helpers


def quoted(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def wait_for_run(
    airflow: AirflowE2E, dag_id: str, what: str, matches: Callable[[list[dict[str, Any]]], bool]
) -> dict[str, Any]:
    """The one run of ``dag_id`` whose upstream asset events match, once it has finished successfully."""

    def find() -> list[dict[str, Any]]:
        return [
            run
            for run in airflow.dag_runs(dag_id)
            if run["run_type"] == "asset_triggered" and matches(airflow.upstream_events(dag_id, run["dag_run_id"]))
        ]

    airflow.wait_for(f"a run of {dag_id} for {what}", find, RUN_TIMEOUT, interval=1.0)
    (run,) = find()
    state = airflow.wait_for_run_state(dag_id, run["dag_run_id"], ("success", "failed"), RUN_TIMEOUT)
    assert state == "success", f"{dag_id} run {run['dag_run_id']} ({what}) {state}: {task_states(airflow, run)}"
    return run


def task_states(airflow: AirflowE2E, run: dict[str, Any]) -> dict[str, str]:
    answer = airflow.get(f"/dags/{run['dag_id']}/dagRuns/{quoted(run['dag_run_id'])}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}


def carries_commit(commit_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(lakefs_facts(event).get("commit_id") == commit_id for event in events)


def published_by(run_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(event.get("source_run_id") == run_id for event in events)


def commit_training_data(lakefs: LakeFSHook, repo: str, part: int, date: int) -> LakeFSCommit:
    lakefs.upload_object(repo, "main", f"data/part-{part}.csv", seed.training_csv(part, 3))
    return lakefs.commit(repo, "main", f"training data part {part}", {"source": "e2e"}, date=date)


def commit_input_batch(lakefs: LakeFSHook, repo: str, batch: int, date: int) -> LakeFSCommit:
    lakefs.upload_object(repo, "main", f"batches/batch-{batch}.csv", seed.inference_csv(batch, 3))
    return lakefs.commit(repo, "main", f"input batch {batch}", {"source": "e2e"}, date=date)


def wait_for_watchers(airflow: AirflowE2E, *repos: str) -> None:
    for repo in repos:
        airflow.wait_for(
            f"the watcher of {repo}",
            lambda repo=repo: f"Watching branch 'main' of lakeFS repository '{repo}'" in airflow.log_of("triggerer"),
            timeout=120,
        )


def prediction_commits(lakefs: LakeFSHook, repo: str, run_id: str) -> list[LakeFSCommit]:
    """Prediction commits on main made by ``run_id``, newest first."""
    return [
        c
        for c in lakefs.log_commits(repo, "main", amount=100, first_parent=True)
        if c.metadata.get("mlrepo.run_id") == run_id and c.metadata.get("mlrepo.output_kind") == "predictions"
    ]


# ------------------------------------------------------------------ journeys


def test_1_training_data_commit_trains_a_model(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    train, models = iris_example.repo("train"), iris_example.repo("models")
    wait_for_watchers(airflow_e2e, train, iris_example.repo("input"))
    started = time.monotonic()
    data = commit_training_data(lakefs, train, 1, at(DAYS_AGO[3], 8))

    run = wait_for_run(airflow_e2e, "iris_training", "the first training commit", carries_commit(data.id))
    journey.timings["commit -> model committed"] = time.monotonic() - started
    model = lakefs.get_commit(models, "main")
    assert model.metadata["mlrepo.dag_id"] == "iris_training"
    assert model.metadata["mlrepo.run_id"] == run["dag_run_id"]
    assert model.metadata["mlrepo.input.training_data"] == f"lakefs://{train}/{data.id}/data/"
    assert model.metadata["mlrepo.input.training_data.rule"] == "asset_event"
    assert model.metadata["mlrepo.runner"] == airflow_services.runner()
    if airflow_services.runner() == "kubernetes":
        # the digest of the image the pod ran, and the pod's own output in the task log
        assert "sha256:" in model.metadata["mlrepo.image_id"]
        task_log = "\n".join(airflow_e2e.task_log_lines("iris_training", run["dag_run_id"], "train", 1))
        assert "hyperparameters:" in task_log, task_log[-3000:]
    links = airflow_e2e.get(f"/dags/iris_training/dagRuns/{quoted(run['dag_run_id'])}/taskInstances/train/links")
    assert links["extra_links"]["lakeFS commit"].endswith(f"/repositories/{models}/commits/{model.id}")
    journey.training["part-1"] = data.id
    journey.models["first"] = model.id
    journey.runs["first training"] = run["dag_run_id"]

    # The new model updated the model Asset, which started an inference run; with no input yet
    # it skips predicting instead of failing.
    inference = wait_for_run(airflow_e2e, "iris_inference", "the first model", published_by(run["dag_run_id"]))
    assert task_states(airflow_e2e, inference) == {"model_and_input_exist": "success", "predict": "skipped"}


def test_2_input_commit_predicts_with_that_model(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert journey.models, "needs journey 1"
    inputs, predictions = iris_example.repo("input"), iris_example.repo("predictions")
    started = time.monotonic()
    batch = commit_input_batch(lakefs, inputs, 1, at(DAYS_AGO[2], 10))

    run = wait_for_run(airflow_e2e, "iris_inference", "input batch 1", carries_commit(batch.id))
    journey.timings["commit -> predictions committed"] = time.monotonic() - started
    (commit,) = prediction_commits(lakefs, predictions, run["dag_run_id"])
    assert commit.metadata["mlrepo.input.input_data"] == f"lakefs://{inputs}/{batch.id}/batches/"
    assert commit.metadata["mlrepo.input.input_data.rule"] == "asset_event"
    assert commit.metadata["mlrepo.model.commit_id"] == journey.models["first"]
    assert commit.metadata["mlrepo.model.policy"] == "latest"
    csv = lakefs.read_object_bytes(predictions, commit.id, "predictions/predictions.csv").decode()
    assert csv.startswith("id,species\n")
    assert len(csv.splitlines()) > 10
    journey.inputs["batch-1"] = batch.id
    journey.runs["first inference"] = run["dag_run_id"]


def test_3_new_training_data_retrains_and_the_next_inference_uses_the_new_model(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert journey.inputs, "needs journey 2"
    train, models = iris_example.repo("train"), iris_example.repo("models")
    inputs, predictions = iris_example.repo("input"), iris_example.repo("predictions")
    data = commit_training_data(lakefs, train, 2, at(DAYS_AGO[2], 9))
    training = wait_for_run(airflow_e2e, "iris_training", "the second training commit", carries_commit(data.id))
    model = lakefs.get_commit(models, "main")
    assert model.id != journey.models["first"]
    assert model.metadata["mlrepo.input.training_data"] == f"lakefs://{train}/{data.id}/data/"
    journey.training["part-2"] = data.id
    journey.models["second"] = model.id

    # The new model starts inference on the input as it is: same input commit, new model.
    by_model = wait_for_run(airflow_e2e, "iris_inference", "the second model", published_by(training["dag_run_id"]))
    (commit,) = prediction_commits(lakefs, predictions, by_model["dag_run_id"])
    assert commit.metadata["mlrepo.model.commit_id"] == model.id
    assert commit.metadata["mlrepo.input.input_data"] == f"lakefs://{inputs}/{journey.inputs['batch-1']}/batches/"

    # And the next input commit is predicted with the new model too.
    batch = commit_input_batch(lakefs, inputs, 2, at(DAYS_AGO[2], 11))
    run = wait_for_run(airflow_e2e, "iris_inference", "input batch 2", carries_commit(batch.id))
    (commit,) = prediction_commits(lakefs, predictions, run["dag_run_id"])
    assert commit.metadata["mlrepo.model.commit_id"] == model.id
    assert commit.metadata["mlrepo.input.input_data"] == f"lakefs://{inputs}/{batch.id}/batches/"
    journey.inputs["batch-2"] = batch.id


def test_4_clearing_a_historical_inference_run_recomputes_it_with_the_new_model(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert "second" in journey.models, "needs journey 3"
    inputs, predictions = iris_example.repo("input"), iris_example.repo("predictions")
    run_id = journey.runs["first inference"]
    (before,) = prediction_commits(lakefs, predictions, run_id)

    started = time.monotonic()
    airflow_e2e.send("POST", f"/dags/iris_inference/dagRuns/{quoted(run_id)}/clear", {"dry_run": False})
    airflow_e2e.wait_for(
        "the cleared run to run again",
        lambda: airflow_e2e.task_instance("iris_inference", run_id, "predict")["try_number"] >= 2,
        RUN_TIMEOUT,
    )
    state = airflow_e2e.wait_for_run_state("iris_inference", run_id, ("success", "failed"), RUN_TIMEOUT)
    assert state == "success"
    journey.timings["clear -> recomputed"] = time.monotonic() - started

    after, old = prediction_commits(lakefs, predictions, run_id)
    assert old.id == before.id
    # Same run, same input commit (kept with the run's triggering asset event), the new model.
    for commit in (old, after):
        assert commit.metadata["mlrepo.input.input_data"] == f"lakefs://{inputs}/{journey.inputs['batch-1']}/batches/"
    assert (old.metadata["mlrepo.try_number"], after.metadata["mlrepo.try_number"]) == ("1", "2")
    assert old.metadata["mlrepo.model.commit_id"] == journey.models["first"]
    assert after.metadata["mlrepo.model.commit_id"] == journey.models["second"]
    assert after.id != old.id
    assert lakefs.get_commit(predictions, "main").id == after.id


def test_5_backfill_the_backtest_over_past_days_commits_a_report(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert "batch-2" in journey.inputs, "needs journey 3"
    predictions, first_model = iris_example.repo("predictions"), journey.models["first"]
    started = time.monotonic()
    backfill = airflow_e2e.send(
        "POST",
        "/backfills",
        {
            "dag_id": "iris_backtest",
            "from_date": DAYS_AGO[2].isoformat(),
            "to_date": DAYS_AGO[1].isoformat(),
            "dag_run_conf": {"model_version": first_model},
            "max_active_runs": 2,
        },
    )

    def finished_runs() -> list[dict[str, Any]] | None:
        runs = [r for r in airflow_e2e.dag_runs("iris_backtest") if r["run_type"] == "backfill"]
        return runs if len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = airflow_e2e.wait_for("the two backfilled backtest runs", finished_runs, 2 * RUN_TIMEOUT, interval=2.0)
    journey.timings["backfill 2 days -> reports committed"] = time.monotonic() - started
    assert [r["state"] for r in runs] == ["success", "success"], [task_states(airflow_e2e, r) for r in runs]
    assert {r["conf"]["model_version"] for r in runs} == {first_model}
    assert airflow_e2e.get(f"/backfills/{backfill['id']}")["dag_id"] == "iris_backtest"

    reports = {}
    for run in runs:
        branch = airflow_e2e.xcom("iris_backtest", run["dag_run_id"], "report")["branch"]
        head = lakefs.get_commit(predictions, branch)
        assert head.metadata["mlrepo.output_kind"] == "backtest_report"
        assert head.metadata["mlrepo.backtest.model_version"] == first_model
        reports[run["data_interval_start"][:10]] = (
            head,
            json.loads(lakefs.read_object_bytes(predictions, branch, "backtest/report.json")),
        )

    # The backfill selects runs by their run_after (midnights D-2 and D-1); the run at D-1 00:00 covers
    # [D-2, D-1): both input commits, oldest first.
    head, report = reports[DAYS_AGO[2].date().isoformat()]
    batches = [journey.inputs["batch-1"], journey.inputs["batch-2"]]
    assert [entry["input_commit"] for entry in report["inputs"]] == batches
    assert head.metadata["mlrepo.backtest.input_commits"] == ",".join(batches)
    assert head.metadata["mlrepo.backtest.model_commit_ids"] == first_model
    first_batch = {p["model_commit"]: p for p in report["inputs"][0]["predictions"] if p["role"] == "earlier"}
    # batch 1 was predicted by the first model (journey 2), the second (journey 3) and again (journey 4 clear)
    assert set(first_batch) == {first_model, journey.models["second"]}
    assert first_batch[first_model]["agreement_with_backtested_model"] == 1.0  # same model, same input, same output
    assert report["models"][first_model]["roles"] == ["backtested", "earlier"]
    assert report["models"][journey.models["second"]]["roles"] == ["earlier"]
    # The day before had no input commits: an empty report, still committed.
    _, empty = reports[DAYS_AGO[3].date().isoformat()]
    assert empty["inputs"] == []
    assert empty["models"] == {}
    assert lakefs.get_commit(predictions, "main").metadata["mlrepo.dag_id"] == "iris_inference"  # main untouched
    journey.runs["backtest branch"] = head.id
    journey.runs["backtest branch name"] = str(
        airflow_e2e.xcom("iris_backtest", runs[-1]["dag_run_id"], "report")["branch"]
    )


def test_5b_a_backfill_of_training_leaves_mains_model_as_it_was(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert "second" in journey.models, "needs journey 3"
    models = iris_example.repo("models")
    production = lakefs.get_commit(models, "main")
    started = time.monotonic()
    airflow_e2e.send(
        "POST",
        "/backfills",
        {"dag_id": "iris_training", "from_date": DAYS_AGO[2].isoformat(), "to_date": DAYS_AGO[2].isoformat()},
    )

    def finished_run() -> dict[str, Any] | None:
        runs = [r for r in airflow_e2e.dag_runs("iris_training") if r["run_type"] == "backfill"]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    run = airflow_e2e.wait_for("the backfilled training run", finished_run, 2 * RUN_TIMEOUT, interval=2.0)
    journey.timings["backfill training 1 day -> model on its own branch"] = time.monotonic() - started
    assert run["state"] == "success", task_states(airflow_e2e, run)
    published = published_output(airflow_e2e, lakefs, "iris_training", run["dag_run_id"], "train")
    branches = lakefs.list_branches(models, prefix="backfill-iris_training-")
    assert any(lakefs.is_ancestor(models, published.commit_id, branch) for branch in branches), branches
    backfilled = lakefs.get_commit(models, published.commit_id)
    assert backfilled.metadata["mlrepo.run_id"] == run["dag_run_id"]
    assert backfilled.metadata["::lakefs::Airflow::run_type"] == "backfill"
    # Trained on the data as of the backfilled run's interval end (D-1 00:00: parts 1 and 2).
    assert backfilled.metadata["mlrepo.input.training_data.rule"] == "as_of"
    # Production's model is the one it was: no backfill ever replaces it.
    assert lakefs.get_commit(models, "main").id == production.id


def test_6_revert_the_model_and_a_bad_training_commit(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert "second" in journey.models, "needs journey 3"
    models, predictions = iris_example.repo("models"), iris_example.repo("predictions")
    train = iris_example.repo("train")
    first_pickle = lakefs.read_object_bytes(models, journey.models["first"], "model/model.pkl")
    second_pickle = lakefs.read_object_bytes(models, journey.models["second"], "model/model.pkl")
    assert first_pickle != second_pickle

    # Revert the model: the branch head holds the first model again, and inference runs with it.
    started = time.monotonic()
    revert = airflow_e2e.send("POST", "/dags/iris_revert/dagRuns", {"logical_date": None, "conf": {"what": "model"}})
    assert airflow_e2e.wait_for_run_state("iris_revert", revert["dag_run_id"], ("success", "failed")) == "success"
    reverted = lakefs.get_commit(models, "main")
    assert reverted.metadata["mlrepo.reverted_commit"] == journey.models["second"]
    assert lakefs.read_object_bytes(models, "main", "model/model.pkl") == first_pickle
    inference = wait_for_run(airflow_e2e, "iris_inference", "the reverted model", published_by(revert["dag_run_id"]))
    journey.timings["revert model -> predictions with the previous model"] = time.monotonic() - started
    (commit,) = prediction_commits(lakefs, predictions, inference["dag_run_id"])
    assert commit.metadata["mlrepo.model.commit_id"] == reverted.id
    assert commit.metadata["mlrepo.input.input_data"].endswith(f"/{journey.inputs['batch-2']}/batches/")
    # Exactly what the first model predicts for batch 2: the backtest of journey 5 computed that.
    if "backtest branch name" in journey.runs:
        backtested = lakefs.read_object_bytes(
            predictions,
            journey.runs["backtest branch name"],
            f"backtest/{journey.inputs['batch-2']}/predictions.csv",
        )
        assert lakefs.read_object_bytes(predictions, commit.id, "predictions/predictions.csv") == backtested

    # A bad training-data commit: revert it; the watcher sees the revert commit and retrains.
    revert = airflow_e2e.send(
        "POST",
        "/dags/iris_revert/dagRuns",
        {"logical_date": None, "conf": {"what": "training_data", "commit": journey.training["part-2"]}},
    )
    assert airflow_e2e.wait_for_run_state("iris_revert", revert["dag_run_id"], ("success", "failed")) == "success"
    data_revert = lakefs.get_commit(train, "main")
    assert data_revert.metadata["mlrepo.reverted_commit"] == journey.training["part-2"]
    retrain = wait_for_run(airflow_e2e, "iris_training", "the training-data revert", carries_commit(data_revert.id))
    retrained = lakefs.get_commit(models, "main")
    assert retrained.metadata["mlrepo.run_id"] == retrain["dag_run_id"]
    # Trained on part 1 alone again, with the same hyperparameters: the very same model bytes.
    assert lakefs.read_object_bytes(models, retrained.id, "model/model.pkl") == first_pickle
    wait_for_run(airflow_e2e, "iris_inference", "the retrained model", published_by(retrain["dag_run_id"]))
    journey.models["retrained"] = retrained.id


def mlrepo(*args: str) -> Any:
    """Run the ``mlrepo`` command line as a user would (``--json``), and return what it printed."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mlrepo")), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT * 3,
        env=os.environ,
    )
    assert result.returncode == 0, f"mlrepo {' '.join(args)}: {result.stderr[-3000:]}"
    return json.loads(result.stdout)


def bad_training_csv(part: int) -> bytes:
    """A training slice with its species labels swapped around: data a model must not be trained on."""
    swap = {"setosa": "virginica", "virginica": "versicolor", "versicolor": "setosa"}
    lines = seed.training_csv(part, 3).decode().splitlines()
    head, rows = lines[0], [line.rsplit(",", 1) for line in lines[1:]]
    return ("\n".join([head, *(f"{features},{swap[label]}" for features, label in rows)]) + "\n").encode()


def test_6b_bad_data_find_what_it_caused_revert_retrain_recompute(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    assert "retrained" in journey.models, "needs journey 6"
    train, models, predictions = (
        iris_example.repo("train"),
        iris_example.repo("models"),
        iris_example.repo("predictions"),
    )
    scan = ["--repository", models, "--repository", predictions]
    started = time.monotonic()

    # Bad training data lands: the watcher trains a model on it, and that model predicts.
    lakefs.upload_object(train, "main", "data/part-3.csv", bad_training_csv(3))
    bad = lakefs.commit(train, "main", "training data part 3 (mislabelled)", {"source": "e2e"})
    training = wait_for_run(airflow_e2e, "iris_training", "the bad training commit", carries_commit(bad.id))
    bad_model = lakefs.get_commit(models, "main")
    assert bad_model.metadata["mlrepo.input.training_data"] == f"lakefs://{train}/{bad.id}/data/"
    inference = wait_for_run(airflow_e2e, "iris_inference", "the bad model", published_by(training["dag_run_id"]))
    (bad_prediction,) = prediction_commits(lakefs, predictions, inference["dag_run_id"])
    assert bad_prediction.metadata["mlrepo.model.commit_id"] == bad_model.id

    # Everything the bad commit caused: the model trained on it and the prediction that model made.
    report = mlrepo("provenance", "--downstream", f"lakefs://{train}/{bad.id}", *scan)
    derived = {(n["output_kind"], n["commit_id"]): n for n in _walk(report["derived"])}
    assert ("model", bad_model.id) in derived, sorted(derived)
    assert ("predictions", bad_prediction.id) in derived, sorted(derived)
    assert derived[("predictions", bad_prediction.id)]["current"]

    # What a recompute would clear now: the bad model's prediction run (its model was chosen 'latest');
    # the bad model itself is pinned to the bad data and needs a retrain instead.
    planned = mlrepo(
        "recompute",
        "--downstream",
        f"lakefs://{train}/{bad.id}",
        *scan,
        "--airflow-api",
        airflow_e2e.base_url,
        "--dry-run",
    )
    assert [(e["dag_id"], e["run_id"]) for e in planned["cleared"]] == [("iris_inference", inference["dag_run_id"])]
    assert any(not item["clearable"] and item["commit_id"] == bad_model.id for item in planned["outputs"]), planned

    # Revert it: the watcher sees the revert commit and retrains without it; that model predicts, and its
    # predictions replace the bad model's at the same location.
    revert = airflow_e2e.send(
        "POST", "/dags/iris_revert/dagRuns", {"logical_date": None, "conf": {"what": "training_data", "commit": bad.id}}
    )
    assert airflow_e2e.wait_for_run_state("iris_revert", revert["dag_run_id"], ("success", "failed")) == "success"
    reverted = lakefs.get_commit(train, "main")
    assert reverted.metadata["mlrepo.reverted_commit"] == bad.id
    retrain = wait_for_run(airflow_e2e, "iris_training", "the bad commit's revert", carries_commit(reverted.id))
    fixed_model = lakefs.get_commit(models, "main")
    assert fixed_model.metadata["mlrepo.run_id"] == retrain["dag_run_id"]
    fixed_run = wait_for_run(airflow_e2e, "iris_inference", "the fixed model", published_by(retrain["dag_run_id"]))
    (fixed_prediction,) = prediction_commits(lakefs, predictions, fixed_run["dag_run_id"])
    assert fixed_prediction.metadata["mlrepo.model.commit_id"] == fixed_model.id

    # The recompute now finds nothing left to clear: the pipeline's own runs replaced every output.
    result = mlrepo(
        "recompute",
        "--downstream",
        f"lakefs://{train}/{bad.id}",
        *scan,
        "--airflow-api",
        airflow_e2e.base_url,
        "--wait",
    )
    assert result["cleared"] == [], result
    assert result["outputs"] == [], result
    journey.timings["bad data -> found, reverted, retrained, predictions replaced"] = time.monotonic() - started

    # Afterwards no current output derives from the bad commit, and the history is still there.
    after = mlrepo("provenance", "--downstream", f"lakefs://{train}/{bad.id}", *scan)
    nodes = {n["commit_id"]: n for n in _walk(after["derived"])}
    assert not [n for n in nodes.values() if n["current"]], nodes
    assert nodes[bad_prediction.id]["superseded_by"] == fixed_prediction.id
    assert nodes[bad_model.id]["superseded_by"] == fixed_model.id
    newest = mlrepo("provenance", f"lakefs://{predictions}/main/predictions/predictions.csv")
    assert fixed_model.id in json.dumps(newest)
    assert bad_model.id not in json.dumps(newest)
    journey.models["fixed"] = fixed_model.id


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node["derived"])


def test_7_marquez_lineage_matches_what_happened(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, journey: Journey, lakefs: LakeFSHook
) -> None:
    """From the newest prediction run, through Marquez's run lineage and each dataset's versions
    (matched on ``createdByRun``), to its exact input and model commits, then to the training run
    that wrote that model and its training-data commit: the model it really used, after a revert too."""
    env = stack.read_env()
    if not env.get("MARQUEZ_URL"):
        pytest.skip(f"Marquez is not running in the local stack: {env.get('MARQUEZ_STATUS', 'unknown')}")
    from airflow_mlrepo.lineage.marquez_reader import MarquezReader, render, trace
    from airflow_mlrepo.lineage.naming import dataset_name, dataset_namespace
    from airflow_mlrepo.lineage.outbox import Outbox
    from airflow_mlrepo.locations import LakeFSLocation
    from airflow_mlrepo.provenance import input_commits

    assert journey.models, "needs journeys 1-6"
    outbox = Outbox(airflow_services.lineage_outbox(airflow_e2e.settings))
    airflow_e2e.wait_for("the stack's lineage outbox to be delivered", lambda: not outbox.pending(), timeout=180)
    marquez = MarquezReader(env["MARQUEZ_URL"], env.get("MARQUEZ_API_KEY"))
    head = lakefs.get_commit(iris_example.repo("predictions"), "main")
    lineage = trace(marquez, head.metadata["mlrepo.openlineage_run_id"])
    print("\n".join(render(lineage)))
    model = lineage.input(dataset_namespace(iris_example.repo("models")), dataset_name("main", "model"))
    batches = lineage.input(dataset_namespace(iris_example.repo("input")), dataset_name("main", "batches"))
    assert model.commit_id == head.metadata["mlrepo.model.commit_id"]
    assert batches.commit_id == LakeFSLocation.parse(input_commits(head.metadata)["input_data"]).ref
    model_commit = lakefs.get_commit(iris_example.repo("models"), model.commit_id)
    assert model.producer is not None, f"no training run behind model commit {model.commit_id}"
    assert model.producer.run_id == model_commit.metadata["mlrepo.openlineage_run_id"]
    training_data = model.producer.input(dataset_namespace(iris_example.repo("train")), dataset_name("main", "data"))
    assert training_data.commit_id == LakeFSLocation.parse(input_commits(model_commit.metadata)["training_data"]).ref
