"""Provenance in the browser: from an inference task in the Airflow UI to its "Provenance" tab, to the
lakeFS commit page with the provenance metadata, to the training run that made the model.

Headless Chromium from Debian driven by Playwright, as in ``test_ui_browser_e2e.py``; the stack's real
api-server (with the provider's plugin), scheduler and lakeFS built with its web UI. Screenshots go to
``docs/images/`` for the demo page.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from mlrepo_devstack import stack
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.links.lakefs import OUTPUT_COMMIT_XCOM_KEY
from airflow_mlrepo.locations import LakeFSLocation
from tests.e2e.conftest import AirflowE2E, IrisExample
from tests.e2e.test_ui_browser_e2e import CHROMIUM, CHROMIUM_ARGS, IMAGES, ensure_training_history


@pytest.fixture(scope="module")
def browser_page(airflow_e2e: AirflowE2E) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=airflow_e2e.base_url)
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        context.close()
        browser.close()


def _run(airflow_e2e: AirflowE2E, dag_id: str) -> str:
    run = airflow_e2e.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
    run_id = str(run["dag_run_id"])
    assert airflow_e2e.wait_for_run_state(dag_id, run_id, ("success", "failed"), timeout=600) == "success"
    return run_id


def test_inference_task_to_provenance_tab_to_lakefs_commit_to_training_run(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, browser_page: Any
) -> None:
    lakefs = LakeFSHook()
    ensure_training_history(lakefs, iris_example.repo("train"))
    # This test's own inference input: the journeys before it in the session leave batches whose ids
    # overlap a new one's (the iris container refuses duplicate ids across the batches it reads).
    lakefs.delete_prefix(iris_example.repo("input"), "main", "batches/")
    lakefs.upload_object(iris_example.repo("input"), "main", "batches/batch-1.csv", seed.inference_csv(1, 5))
    lakefs.commit(iris_example.repo("input"), "main", "inference batch 1 (the provenance test's)", {"source": "e2e"})
    _run(airflow_e2e, "iris_training")
    inference_run = _run(airflow_e2e, "iris_inference")
    # What this task instance committed, and the model it used. Runs the Assets start beside this
    # test's (its input commit, its model) predict the same bytes and commit too, before or after it:
    # the tab must show this run's commit, not the newest one nor the one that first wrote the bytes.
    output = LakeFSLocation.parse(airflow_e2e.xcom("iris_inference", inference_run, "predict", OUTPUT_COMMIT_XCOM_KEY))
    prediction = lakefs.get_commit(output.repository, output.ref)
    model = lakefs.get_commit(iris_example.repo("models"), prediction.metadata["mlrepo.model.commit_id"])
    assert prediction.metadata["mlrepo.run_id"] == inference_run
    assert model.metadata["mlrepo.dag_id"] == "iris_training"
    training_run = model.metadata["mlrepo.run_id"]
    IMAGES.mkdir(parents=True, exist_ok=True)
    page = browser_page

    # The inference task in the Airflow UI, then its Provenance tab (the plugin's page in an iframe).
    quoted = urllib.parse.quote(inference_run, safe="")
    page.goto(f"/dags/iris_inference/runs/{quoted}/tasks/predict", wait_until="networkidle")
    page.get_by_role("link", name="Provenance").click()
    view = page.frame_locator("iframe").first
    view.get_by_text(f"Provenance of {output.uri}").wait_for()
    view.get_by_text(f"run {inference_run}").first.wait_for()
    for commit in (prediction.id, model.id, model.metadata["mlrepo.input.training_data"].split("/")[3]):
        view.get_by_text(commit[:12]).first.wait_for()
    view.get_by_text("model framework").wait_for()
    page.screenshot(path=str(IMAGES / "ui-provenance-tab.png"))

    # The lakeFS link lands on the commit page of the prediction, which shows the provenance metadata.
    commit_url = view.get_by_role("link", name="lakeFS commit").first.get_attribute("href")
    assert commit_url.endswith(f"/repositories/{iris_example.repo('predictions')}/commits/{prediction.id}")
    training_url = view.get_by_role("link", name="Airflow run").nth(1).get_attribute("href")
    page.goto(commit_url)
    env = stack.read_env()
    login = page.get_by_role("button", name="Login")
    login.wait_for()
    page.get_by_placeholder("Access Key ID").fill(env["LAKEFS_ACCESS_KEY_ID"])
    page.get_by_placeholder("Secret Access Key").fill(env["LAKEFS_SECRET_ACCESS_KEY"])
    login.click()
    page.wait_for_url("**/repositories/**")
    if "/commits/" not in page.url:  # lakeFS lands on the repositories list after a login
        page.goto(commit_url)
    page.get_by_text("mlrepo.run_id").first.wait_for()
    page.get_by_text(inference_run).first.wait_for()
    page.screenshot(path=str(IMAGES / "lakefs-commit-provenance.png"), full_page=True)

    # The training run that made the model, in the Airflow UI.
    assert training_url.endswith(f"/dags/iris_training/runs/{urllib.parse.quote(training_run, safe='')}")
    page.goto(training_url, wait_until="networkidle")
    page.get_by_text(training_run).first.wait_for()
    page.screenshot(path=str(IMAGES / "ui-training-run.png"))
