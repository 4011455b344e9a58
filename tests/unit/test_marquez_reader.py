"""Reading lineage back the way Marquez 0.51 answers (recorded answers, ``tests/unit/marquez_answers.py``):
prediction run -> run lineage -> each input's version matched on ``createdByRun`` -> exact commits ->
the training run -> its training-data commit. Never the ``…/versions/{version}`` route (404, #1977)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_mlrepo.cli import main as mlrepo
from airflow_mlrepo.exceptions import MarquezReadError
from airflow_mlrepo.lineage.marquez_reader import MarquezReader, render, to_dict, trace
from tests.recorded_marquez import RecordedMarquez
from tests.unit import marquez_answers as recorded

pytestmark = pytest.mark.unit


@pytest.fixture
def marquez() -> Iterator[RecordedMarquez]:
    server = RecordedMarquez(recorded.answers())
    yield server
    server.close()


def test_a_prediction_leads_to_its_exact_commits_and_the_training_run_of_its_model(marquez: RecordedMarquez) -> None:
    lineage = trace(MarquezReader(marquez.url), recorded.PREDICT_RUN)
    model = lineage.input(*recorded.MODELS)
    # the model version the run read, not the dataset's newest (NEWER_MODEL_COMMIT)
    assert model.commit_id == recorded.MODEL_COMMIT
    assert model.produced_by_run_id == recorded.TRAIN_RUN
    assert lineage.input(*recorded.BATCHES).commit_id == recorded.INPUT_COMMIT
    assert lineage.input(*recorded.BATCHES).registered_commit
    assert model.producer is not None
    assert model.producer.job_name == "iris_training.train"
    assert model.producer.input(*recorded.DATA).commit_id == recorded.DATA_COMMIT
    assert not [request.path for request in marquez.requests if "/versions/" in request.path]
    text = "\n".join(render(lineage))
    assert f"read lakefs://iris-models/{recorded.MODEL_COMMIT}/model  commit {recorded.MODEL_COMMIT}" in text
    assert f"run {recorded.TRAIN_RUN}  mlrepo-demo/iris_training.train  COMPLETED" in text
    assert "(committed outside airflow-mlrepo)" in text
    assert to_dict(lineage)["inputs"][1]["producer"]["inputs"][0]["commitId"] == recorded.DATA_COMMIT


def test_an_api_key_is_sent_and_errors_name_the_marquez_and_the_route(marquez: RecordedMarquez) -> None:
    marquez.required_bearer = "k3y"
    with pytest.raises(
        MarquezReadError, match=r"refused GET /api/v1/runlineage/upstream \(HTTP 401\): check the API key"
    ):
        trace(MarquezReader(marquez.url), recorded.PREDICT_RUN)
    trace(MarquezReader(marquez.url, "k3y"), recorded.PREDICT_RUN)
    assert marquez.requests[-1].headers["authorization"] == "Bearer k3y"
    with pytest.raises(MarquezReadError, match=f"Marquez at {marquez.url} has no /api/v1/runlineage/upstream"):
        trace(MarquezReader(marquez.url, "k3y"), "0193a1b2-0000-7000-8000-0000000000ff")
    url = marquez.url
    marquez.close()
    with pytest.raises(MarquezReadError, match=f"Marquez at {url} did not answer GET /api/v1/jobs/runs/x"):
        MarquezReader(url, timeout=2).run("x")


def _show(marquez: RecordedMarquez, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = mlrepo(["lineage", "show", *args, "--url", marquez.url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lineage_show_walks_from_a_prediction_run_to_the_training_data_commit(
    marquez: RecordedMarquez, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _show(marquez, capsys, recorded.PREDICT_RUN)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"run {recorded.PREDICT_RUN}  mlrepo-demo/iris_inference.predict  COMPLETED"
    assert f"  read lakefs://iris-models/{recorded.MODEL_COMMIT}/model  commit {recorded.MODEL_COMMIT}" in lines
    assert f"    run {recorded.TRAIN_RUN}  mlrepo-demo/iris_training.train  COMPLETED" in lines
    assert (
        f"      read lakefs://iris-train/{recorded.DATA_COMMIT}/data  commit {recorded.DATA_COMMIT}"
        "  (committed outside airflow-mlrepo)"
    ) in lines
    code, out, _ = _show(marquez, capsys, recorded.PREDICT_RUN, "--json")
    assert code == 0
    document = json.loads(out)
    (model,) = [item for item in document["inputs"] if item["name"] == "main/model"]
    assert model["commitId"] == recorded.MODEL_COMMIT
    assert model["producer"]["inputs"][0]["commitId"] == recorded.DATA_COMMIT


def test_lineage_show_starts_from_a_lakefs_commit_or_a_branch(
    marquez: RecordedMarquez, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _show(marquez, capsys, f"lakefs://iris-models/{recorded.MODEL_COMMIT}/model")
    assert code == 0
    lines = out.splitlines()
    # the older model commit, not the dataset's newest version: its own training run and data commit
    assert lines[0] == f"lakefs://iris-models/{recorded.MODEL_COMMIT}/model  commit {recorded.MODEL_COMMIT}  written by"
    assert lines[1] == f"  run {recorded.TRAIN_RUN}  mlrepo-demo/iris_training.train  COMPLETED"
    assert f"    read lakefs://iris-train/{recorded.DATA_COMMIT}/data  commit {recorded.DATA_COMMIT}" in lines[2]
    code, out, _ = _show(marquez, capsys, "lakefs://iris-models/main/model/", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["commitId"] == recorded.NEWER_MODEL_COMMIT  # a branch: its newest version
    assert document["writtenBy"]["runId"] == recorded.NEWER_TRAIN_RUN


def test_lineage_show_names_what_is_wrong(marquez: RecordedMarquez, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _show(marquez, capsys, "not-a-run")
    assert code == 1
    assert "'not-a-run' is neither an OpenLineage run id (a UUID) nor a lakeFS location" in err
    code, _, err = _show(marquez, capsys, f"lakefs://iris-models/{recorded.DATA_COMMIT}/model")
    assert code == 1
    assert (
        f"knows no writer of lakefs://iris-models/{recorded.DATA_COMMIT}/model: no dataset <branch>/model of "
        f"namespace lakefs://iris-models has a version at commit {recorded.DATA_COMMIT}"
    ) in err
    code, _, err = _show(marquez, capsys, "0193a1b2-0000-7000-8000-0000000000ff")
    assert code == 1
    assert f"Marquez at {marquez.url} has no /api/v1/runlineage/upstream (HTTP 404)" in err
    code, _, err = _show(marquez, capsys, "lakefs://iris-models")
    assert code == 1
    assert "Invalid lakeFS location 'lakefs://iris-models'" in err
