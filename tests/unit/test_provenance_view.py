"""The "Provenance" tab of a task instance: the api-server app, with lakeFS faked at the hook boundary
(the same in-memory repositories as the `mlrepo provenance` tests) and the XCom read replaced."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_mlrepo.provenance_view.app import API_ROUTE, PAGE_ROUTE, create_app
from airflow_mlrepo.provenance_view.page import output_location
from airflow_mlrepo.provenance_view.plugin import VIEW_HREF, ProvenanceViewPlugin
from tests.unit.test_provenance_report import MODEL_MERGE, PRED_MERGE, TRAIN, FakeLakeFS

RUN = "manual__2026-11-25T00:00:00+00:00"
PARAMS = {"dag_id": "iris_inference", "run_id": RUN, "task_id": "predict", "map_index": "-1"}


def _client(return_value: Any, seen: list[tuple[str, str, str, int]] | None = None) -> TestClient:
    def read(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
        if seen is not None:
            seen.append((dag_id, run_id, task_id, map_index))
        return return_value

    return TestClient(create_app(xcom_reader=read, hook_factory=FakeLakeFS, authorize=False))


PREDICTIONS = {"output": f"lakefs://iris-predictions/{PRED_MERGE}/predictions/", "commit_id": PRED_MERGE}


def test_the_page_shows_output_inputs_model_training_data_and_links() -> None:
    seen: list[tuple[str, str, str, int]] = []
    answer = _client(PREDICTIONS, seen).get(PAGE_ROUTE, params=PARAMS)
    assert answer.status_code == 200
    assert seen == [("iris_inference", RUN, "predict", -1)]
    page = answer.text
    for commit in (PRED_MERGE, MODEL_MERGE, TRAIN):
        assert commit[:12] in page
    assert f'href="http://lakefs.example:8000/repositories/iris-predictions/commits/{PRED_MERGE}"' in page
    assert f"/repositories/iris-models/compare?ref={MODEL_MERGE}~1&amp;compare={MODEL_MERGE}" in page
    assert "/repositories/iris-train/objects?ref=" in page  # a prefix: its listing
    assert "model framework <b>scikit-learn</b>" in page
    assert "pinned by rule <b>as_of</b>" in page
    assert "Marquez run" not in page  # no [mlrepo] marquez_url


def test_the_json_api_returns_the_tree() -> None:
    answer = _client(PREDICTIONS).get(API_ROUTE, params=PARAMS)
    assert answer.status_code == 200
    tree = answer.json()
    assert tree["commit_id"] == PRED_MERGE
    assert {child["role"] for child in tree["inputs"]} == {"input_data", "model"}


@pytest.mark.parametrize("return_value", [None, "not json", {"output": "s3://bucket/x"}, {"commit_id": "x"}])
def test_a_task_without_an_output_commit_says_so(return_value: Any) -> None:
    client = _client(return_value)
    page = client.get(PAGE_ROUTE, params=PARAMS)
    assert page.status_code == 200
    assert "Task predict of run manual__2026-11-25T00:00:00+00:00 (iris_inference) recorded no lakeFS output" in (
        page.text
    )
    assert client.get(API_ROUTE, params=PARAMS).status_code == 404


def test_an_unreadable_provenance_names_the_output() -> None:
    missing = {"output": "lakefs://iris-predictions/" + "9" * 64 + "/predictions/"}
    page = _client(missing).get(PAGE_ROUTE, params=PARAMS).text
    assert "committed lakefs://iris-predictions/9999" in page
    assert "cannot be read" in page


def test_without_the_ui_s_login_the_app_answers_401() -> None:
    client = TestClient(create_app(xcom_reader=lambda *a: PREDICTIONS, hook_factory=FakeLakeFS))
    assert client.get(PAGE_ROUTE, params=PARAMS).status_code == 401
    assert client.get(API_ROUTE, params=PARAMS).status_code == 401


def test_the_plugin_adds_a_task_instance_tab_templated_with_the_ids() -> None:
    (view,) = ProvenanceViewPlugin.external_views
    assert view["destination"] == "task_instance"
    assert view["href"] == VIEW_HREF
    for field in ("{DAG_ID}", "{RUN_ID}", "{TASK_ID}", "{MAP_INDEX}"):
        assert field in VIEW_HREF
    (app,) = ProvenanceViewPlugin.fastapi_apps
    assert VIEW_HREF.startswith(app["url_prefix"] + PAGE_ROUTE)


def test_output_location_reads_the_operators_return_value() -> None:
    location = output_location(PREDICTIONS)
    assert location is not None
    assert (location.repository, location.ref, location.path) == ("iris-predictions", PRED_MERGE, "predictions/")


def test_an_unmapped_task_s_unfilled_map_index_placeholder_means_minus_one() -> None:
    # Airflow 3.3's UI fills {DAG_ID}, {RUN_ID}, {TASK_ID} and leaves {MAP_INDEX} as it is for an unmapped task
    seen: list[tuple[str, str, str, int]] = []
    answer = _client(PREDICTIONS, seen).get(PAGE_ROUTE, params={**PARAMS, "map_index": "{MAP_INDEX}"})
    assert answer.status_code == 200
    assert seen == [("iris_inference", RUN, "predict", -1)]
