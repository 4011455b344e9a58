"""Lineage in the real Marquez: exact lakeFS commits through Marquez's own API, and no event lost in an outage.

Real `airflow dags test` runs with the openlineage provider configured to the outbox transport,
delivering to the Marquez of the local stack. Skips (with the stack's reason) where Marquez cannot
run; the same runs without Marquez are asserted in ``test_lineage_events.py``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mlrepo_devstack import stack
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.lineage.outbox import Outbox
from tests.conftest import REAL_SERVICES
from tests.integration.dag_runs import DagRunResult, run_dag

IMAGE = "airflow-mlrepo/iris:0.1"
OUTAGE_SECONDS = 60


@pytest.fixture(scope="module")
def marquez_url(stack_env: dict[str, str]) -> str:
    url = stack_env.get("MARQUEZ_URL")
    if not url:
        pytest.skip(f"Marquez is not running in the local stack: {stack_env.get('MARQUEZ_STATUS', 'unknown')}")
    REAL_SERVICES["Marquez"] = url
    return url


@pytest.fixture
def iris_repos(hook: LakeFSHook) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"mq-{kind}-{suffix}" for kind in ("train", "input", "models", "predictions")}
    for name in names.values():
        hook.create_repository(name, f"local://{name}")
    yield names
    for name in names.values():
        hook.delete_repository(name, missing_ok=True)


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marquez_url: str) -> Outbox:
    path = tmp_path / "outbox"
    transport = {
        "type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
        "outbox_dir": str(path),
        "http": {"url": marquez_url, "endpoint": "api/v1/lineage", "timeout": 5},
        "idle_exit_seconds": 5,
        "max_backoff_seconds": 5,
    }
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", f"mlrepo-it-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    return Outbox(path)


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _wait_until_delivered(outbox: Outbox, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not outbox.pending():
            return
        time.sleep(0.5)
    raise AssertionError(f"not delivered in {timeout} s: {outbox.status()}")


def _listener_events(outbox: Outbox) -> list[dict[str, Any]]:
    return [json.loads(entry.read_text().splitlines()[-1]) for entry in outbox.pending()]


def _run_id(events: list[dict[str, Any]], result: DagRunResult, task_id: str) -> str:
    job = f"{result.dag_id}.{task_id}"
    (run_id,) = {e["run"]["runId"] for e in events if e["job"]["name"] == job and e["eventType"] == "COMPLETE"}
    return run_id


class Marquez:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def run(self, run_id: str) -> dict[str, Any]:
        return _get(f"{self.url}/api/v1/jobs/runs/{run_id}")

    def dataset_version(self, namespace: str, name: str, version: str) -> dict[str, Any]:
        return _get(f"{self.url}/api/v1/namespaces/{_quote(namespace)}/datasets/{_quote(name)}/versions/{version}")

    def inputs(self, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Each input dataset version of a run, as Marquez linked it: (namespace, name) -> version document."""
        found = {}
        for item in self.run(run_id)["inputDatasetVersions"]:
            ident = item["datasetVersionId"]
            found[(ident["namespace"], ident["name"])] = self.dataset_version(
                ident["namespace"], ident["name"], ident["version"]
            )
        return found

    def upstream(self, run_id: str) -> dict[str, Any]:
        return _get(f"{self.url}/api/v1/runlineage/upstream?runId={run_id}")


def _commit_of(version: dict[str, Any]) -> str:
    return str(version["facets"]["version"]["datasetVersion"])


def _predict_kwargs(repos: dict[str, str]) -> dict[str, Any]:
    return {
        "inputs": {"input_data": f"lakefs://{repos['input']}/main/batches/"},
        "model": f"lakefs://{repos['models']}/main/model/",
        "output_location": f"lakefs://{repos['predictions']}/main/predictions/",
        "image": IMAGE,
        "cmds": ["python", "-m", "mlrepo_iris.predict"],
    }


def _train(repos: dict[str, str], when: datetime) -> DagRunResult:
    return run_dag(
        "train",
        when,
        inputs={"training_data": f"lakefs://{repos['train']}/main/data/"},
        output_location=f"lakefs://{repos['models']}/main/model/",
        hyperparameters={"C": 1.0},
        image=IMAGE,
        cmds=["python", "-m", "mlrepo_iris.train"],
    )


def test_marquez_shows_the_exact_commits_of_train_predict_and_a_historical_predict(
    marquez_url: str, hook: LakeFSHook, iris_repos: dict[str, str], outbox: Outbox, airflow_metadata_db: str
) -> None:
    repos = iris_repos
    marquez = Marquez(marquez_url)
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    train_commit = hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    first_input = hook.commit(repos["input"], "main", "input batch 1")

    trained = _train(repos, datetime.now(timezone.utc))
    assert trained.state == "success", trained.output[-4000:]
    model_commit = hook.get_commit(repos["models"], "main")
    first_time = datetime.now(timezone.utc)
    predicted = run_dag("predict", first_time, model_version="latest", **_predict_kwargs(repos))
    assert predicted.state == "success", predicted.output[-4000:]
    # newer input, read by a current run: it becomes the dataset's current version in Marquez
    hook.upload_object(repos["input"], "main", "batches/batch-2.csv", seed.inference_csv(2, 3))
    second_input = hook.commit(
        repos["input"], "main", "input batch 2", date=int((first_time + timedelta(minutes=30)).timestamp())
    )
    current = run_dag("predict", first_time + timedelta(hours=1), model_version="latest", **_predict_kwargs(repos))
    assert current.state == "success", current.output[-4000:]
    # then a historical (backfilled / cleared) run for the first time reads the older commit
    historical = run_dag("predict", first_time, model_version="as_of", **_predict_kwargs(repos))
    assert historical.state == "success", historical.output[-4000:]

    events = _listener_events(outbox)
    train_run = _run_id(events, trained, "train")
    predict_run = _run_id(events, predicted, "predict")
    current_run = _run_id(events, current, "predict")
    historical_run = _run_id(events, historical, "predict")
    _wait_until_delivered(outbox)

    models_ns, input_ns, train_ns = (f"lakefs://{repos[k]}" for k in ("models", "input", "train"))
    # prediction run -> the model version (with its commit, made by the training run) and the input commit
    inputs = marquez.inputs(predict_run)
    model_version = inputs[(models_ns, "main/model")]
    assert _commit_of(model_version) == model_commit.id
    assert model_version["createdByRun"]["id"] == train_run
    assert _commit_of(inputs[(input_ns, "main/batches")]) == first_input.id
    # model version -> training run -> the training-data commit
    training_inputs = marquez.inputs(model_version["createdByRun"]["id"])
    assert _commit_of(training_inputs[(train_ns, "main/data")]) == train_commit.id
    # the current run read the newer input; the historical run the older one, not Marquez's newest
    assert _commit_of(marquez.inputs(current_run)[(input_ns, "main/batches")]) == second_input.id
    historical_inputs = marquez.inputs(historical_run)
    assert _commit_of(historical_inputs[(input_ns, "main/batches")]) == first_input.id
    assert _commit_of(historical_inputs[(models_ns, "main/model")]) == model_commit.id
    # run lineage upstream of the historical prediction reaches the training run
    upstream = marquez.upstream(historical_run)
    upstream_runs = {item["run"]["id"] for item in upstream["runs"]}
    assert {historical_run, train_run} <= upstream_runs


def test_no_event_is_lost_while_marquez_is_down_for_a_minute(
    marquez_url: str, hook: LakeFSHook, iris_repos: dict[str, str], outbox: Outbox, airflow_metadata_db: str
) -> None:
    repos = iris_repos
    hook.upload_object(repos["train"], "main", "data/iris-part-1.csv", seed.training_csv(1, 2))
    hook.commit(repos["train"], "main", "training data part 1")
    hook.upload_object(repos["input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 3))
    hook.commit(repos["input"], "main", "input batch 1")

    stack.down([stack.MARQUEZ])
    stopped = time.monotonic()
    try:
        with pytest.raises(urllib.error.URLError):
            _get(f"{marquez_url}/api/v1/namespaces")
        started = time.monotonic()
        trained = _train(repos, datetime.now(timezone.utc))
        predicted = run_dag("predict", datetime.now(timezone.utc), model_version="latest", **_predict_kwargs(repos))
        runs_took = time.monotonic() - started
        assert trained.state == "success", trained.output[-4000:]
        assert predicted.state == "success", predicted.output[-4000:]
        events = _listener_events(outbox)
        assert len(events) >= 4  # START + COMPLETE of both tasks, all kept on disk
        remaining = OUTAGE_SECONDS - (time.monotonic() - stopped)
        if remaining > 0:
            time.sleep(remaining)
        assert time.monotonic() - stopped >= OUTAGE_SECONDS
        print(f"both DAG runs took {runs_took:.1f} s with Marquez down; {len(events)} events waiting")
    finally:
        stack.up([stack.MARQUEZ])
    _wait_until_delivered(outbox)
    marquez = Marquez(marquez_url)
    for event in events:
        run = marquez.run(event["run"]["runId"])
        assert run["id"] == event["run"]["runId"]
    for result, task in ((trained, "train"), (predicted, "predict")):
        assert marquez.run(_run_id(events, result, task))["state"] == "COMPLETED"
