"""The Airflow UI in a real browser: backfill ``iris_training`` through the UI's form, then follow a
finished task's extra links.

Headless Chromium from Debian (``/usr/bin/chromium``; ``make browser`` installs it) driven by
Playwright for Python; Playwright's own browser download is never used. The api-server, scheduler and
lakeFS are the stack's real ones. Screenshots go to ``docs/images/`` for the how-to pages.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.links.lakefs import OUTPUT_COMMIT_XCOM_KEY
from airflow_mlrepo.locations import LakeFSLocation
from tests.e2e.conftest import AirflowE2E, IrisExample

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
FROM, TO = TODAY - timedelta(days=2), TODAY - timedelta(days=1)


@pytest.fixture(scope="module")
def page(airflow_e2e: AirflowE2E) -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=airflow_e2e.base_url)
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()


def ensure_training_history(lakefs: LakeFSHook, repo: str) -> None:
    """Training data dated three and two days ago (the journeys commit the same when they ran first)."""
    messages = {c.message for c in lakefs.log_commits(repo, "main", amount=50)}
    for part, days_ago, hour in ((1, 3, 8), (2, 2, 9)):
        if f"training data part {part}" not in messages:
            lakefs.upload_object(repo, "main", f"data/part-{part}.csv", seed.training_csv(part, 3))
            date = int((TODAY - timedelta(days=days_ago, hours=-hour)).timestamp())
            lakefs.commit(repo, "main", f"training data part {part}", {"source": "e2e"}, date=date)


def pick_datetime(page: Any, index: int, when: datetime) -> None:
    """Fill the ``index``-th date-time field of the open form (a popover with date and time inputs)."""
    page.get_by_test_id("datetime-input").nth(index).click()
    popover = page.get_by_role("dialog").last
    popover.get_by_placeholder("YYYY/MM/DD").fill(when.strftime("%Y/%m/%d"))
    popover.get_by_placeholder("HH:mm").fill(when.strftime("%H:%M"))
    page.keyboard.press("Escape")


# Pending (docs/ci.md): passed alone on the stack after the journeys; in the clean-clone CI run of
# 2026-12-01 one of the form's two backfill runs failed (['failed', 'success']), cause not yet read.
def test_backfill_through_the_ui_form_then_open_a_task_and_its_extra_links(
    airflow_e2e: AirflowE2E, iris_example: IrisExample, page: Any
) -> None:
    lakefs = LakeFSHook()
    ensure_training_history(lakefs, iris_example.repo("train"))
    IMAGES.mkdir(parents=True, exist_ok=True)
    # Runs an earlier module made for these dates (the journeys' backfill) would leave the form only the
    # missing ones to trigger: remove them, so the backfill makes both runs.
    for earlier in airflow_e2e.dag_runs("iris_training"):
        if earlier["run_after"][:10] in (FROM.date().isoformat(), TO.date().isoformat()):
            path = f"/dags/iris_training/dagRuns/{urllib.parse.quote(earlier['dag_run_id'], safe='')}"
            if earlier["state"] in ("queued", "running"):
                airflow_e2e.send("PATCH", path, {"state": "failed"})  # Airflow deletes finished runs only
            airflow_e2e.http.delete(f"/api/v2{path}")
    before = {r["dag_run_id"] for r in airflow_e2e.dag_runs("iris_training")}
    earlier_backfills = {b["id"] for b in airflow_e2e.get("/backfills", dag_id="iris_training")["backfills"]}

    page.goto("/dags/iris_training", wait_until="networkidle")
    page.get_by_role("button", name="Trigger Dag").wait_for()
    page.screenshot(path=str(IMAGES / "ui-training-dag.png"))

    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    form.get_by_text("Backfill", exact=True).click()
    pick_datetime(page, 0, FROM)
    pick_datetime(page, 1, TO)
    form.get_by_text("2 runs will be triggered.").wait_for()
    form.get_by_role("spinbutton", name="C", exact=True).fill("0.5")  # a Run Parameter, for every run
    # Airflow 3.3's form sends the Run Parameters as the backfill's conf only with this box ticked
    # (otherwise the runs get the DAG's defaults); see docs/how-to/backfill-and-backtest.md.
    form.get_by_text("Override parameters on existing runs").click()
    page.screenshot(path=str(IMAGES / "ui-backfill-form.png"), full_page=True)
    form.get_by_role("button", name="Run Backfill").click()
    page.get_by_text("Backfill generated").first.wait_for()

    # The REST API sees the backfill the form created, and its two runs.
    backfills = airflow_e2e.get("/backfills", dag_id="iris_training")["backfills"]
    (backfill,) = [b for b in backfills if b["id"] not in earlier_backfills]
    assert backfill["from_date"].startswith(FROM.strftime("%Y-%m-%dT%H:%M"))
    assert backfill["to_date"].startswith(TO.strftime("%Y-%m-%dT%H:%M"))
    # The form sends every DAG param: C as typed, publish_to at its default.
    assert backfill["dag_run_conf"] == {"C": 0.5, "publish_to": "auto"}

    def finished() -> list[dict[str, Any]] | None:
        runs = [
            r
            for r in airflow_e2e.dag_runs("iris_training")
            if r["dag_run_id"] not in before and r["run_type"] == "backfill"
        ]
        done = len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs)
        return runs if done else None

    runs = airflow_e2e.wait_for("the two backfilled training runs", finished, 300, interval=2.0)
    assert {r["run_type"] for r in runs} == {"backfill"}
    # The form's dates select the runs' midnights (run_after); each run covers the day before it.
    assert sorted(r["run_after"][:10] for r in runs) == [FROM.date().isoformat(), TO.date().isoformat()]
    assert [r["state"] for r in runs] == ["success", "success"]
    page.goto("/dags/iris_training/runs", wait_until="networkidle")
    page.get_by_text(runs[-1]["dag_run_id"]).first.wait_for()
    page.screenshot(path=str(IMAGES / "ui-backfill-runs.png"))

    # A finished task: its page shows the extra links the API computes, the lakeFS one to the model commit.
    run_id = runs[-1]["dag_run_id"]
    # A backfill publishes to a branch of its own, never to main (docs/concepts/publishing.md).
    published = LakeFSLocation.parse(airflow_e2e.xcom("iris_training", run_id, "train", OUTPUT_COMMIT_XCOM_KEY))
    models = iris_example.repo("models")
    backfill_branches = lakefs.list_branches(models, prefix="backfill-iris_training-")
    assert any(lakefs.is_ancestor(models, published.ref, b) for b in backfill_branches), backfill_branches
    assert not lakefs.is_ancestor(models, published.ref, "main"), "a backfill published to main"
    model = lakefs.get_commit(models, published.ref)
    assert model.metadata["mlrepo.run_id"] == run_id
    assert model.metadata["mlrepo.input.training_data.rule"] == "as_of"
    assert json.loads(model.metadata["mlrepo.hyperparameters"]) == {"C": 0.5}
    assert model.metadata["mlrepo.input.training_data.as_of"].startswith(TO.date().isoformat())
    model_commit = model.id
    quoted = urllib.parse.quote(run_id, safe="")
    links = airflow_e2e.get(f"/dags/iris_training/dagRuns/{quoted}/taskInstances/train/links")["extra_links"]
    expected = f"/repositories/{iris_example.repo('models')}/commits/{model_commit}"
    assert links["lakeFS commit"].endswith(expected)
    page.goto(f"/dags/iris_training/runs/{quoted}/tasks/train/details")  # the task's Details tab
    page.get_by_text("Extra Links").wait_for()
    lakefs_link = page.get_by_role("link", name="lakeFS commit")
    lakefs_link.wait_for()
    assert lakefs_link.get_attribute("href") == links["lakeFS commit"]
    for name, url in links.items():
        if url:  # a link without a URL (e.g. Marquez without [mlrepo] marquez_url) is not offered
            assert page.get_by_role("link", name=re.compile(re.escape(name))).get_attribute("href") == url
    page.screenshot(path=str(IMAGES / "ui-task-extra-links.png"))
    lakefs_page = page.context.request.get(links["lakeFS commit"])
    assert lakefs_page.status == 200
