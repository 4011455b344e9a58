"""Reading lineage back the way Marquez 0.51 answers (recorded answers, ``tests/unit/marquez_answers.py``):
prediction run -> run lineage -> each input's version matched on ``createdByRun`` -> exact commits ->
the training run -> its training-data commit. Never the ``…/versions/{version}`` route (404, #1977)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
