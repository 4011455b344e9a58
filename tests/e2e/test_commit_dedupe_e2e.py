"""An asset fed by both the lakeFS webhook and an AssetWatcher gets one event, and one run, per commit.

Real Airflow (api-server with the receiver, triggerer with the watcher, scheduler) and real lakeFS
running the action file. Either side may see a commit first; the other finds its mark in the asset
state store (:mod:`airflow_mlrepo.assets.seen_commits`) and records nothing.
"""

from __future__ import annotations

import time

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.e2e.conftest import AirflowE2E, lakefs_facts, new_dag_id
from tests.e2e.test_commit_detection_e2e import (
    ACTION_FILE,
    _install_action,
    _runs_with_commit,
    _wait_for_single_run,
    write_watched_dag,
)


def _asset_events_for(airflow: AirflowE2E, dag_id: str, commit_id: str) -> list[dict[str, object]]:
    found = []
    for run in airflow.dag_runs(dag_id):
        for event in airflow.upstream_events(dag_id, run["dag_run_id"]):
            facts = lakefs_facts(event)
            if commit_id in (facts.get("commits") or [facts.get("commit_id")]):
                found.append(event)
    return found


def test_webhook_and_watcher_on_one_asset_fire_once_per_commit(
    airflow_e2e: AirflowE2E, hook: LakeFSHook, repo: str, webhook_secret: str
) -> None:
    dag_id = new_dag_id("e2e_both")
    write_watched_dag(airflow_e2e, dag_id, repo)
    _install_action(hook, repo, airflow_e2e)

    # 1. Both see the commit: lakeFS calls the webhook right after it, the watcher polls every 2 s.
    hook.upload_object(repo, "main", "data/1.csv", b"1\n")
    first = hook.commit(repo, "main", "data seen by both")
    _wait_for_single_run(airflow_e2e, dag_id, first.id)
    time.sleep(8)  # several watcher polls later
    assert len(_runs_with_commit(airflow_e2e, dag_id, first.id)) == 1
    assert len(_asset_events_for(airflow_e2e, dag_id, first.id)) == 1

    # 2. The watcher first, the webhook delivered afterwards (lakeFS re-running a hook, or a slow one).
    hook.client.objects_api.delete_object(repo, "main", ACTION_FILE.relative_to(ACTION_FILE.parents[1]).as_posix())
    hook.commit(repo, "main", "remove the action")
    hook.upload_object(repo, "main", "data/2.csv", b"2\n")
    second = hook.commit(repo, "main", "data seen by the watcher only")
    run = _wait_for_single_run(airflow_e2e, dag_id, second.id)
    (event,) = airflow_e2e.upstream_events(dag_id, run["dag_run_id"])
    assert lakefs_facts(event)["source"] == "watcher"
    late = airflow_e2e.http.post(
        "/mlrepo/lakefs/events",
        json={"event_type": "post-commit", "repository_id": repo, "branch_id": "main", "commit_id": second.id},
        headers={"X-Mlrepo-Webhook-Secret": webhook_secret},
    )
    assert late.status_code == 200, late.text
    assert [(e["duplicate"], e["recorded_by"]) for e in late.json()["events"]] == [(True, "watcher")]
    time.sleep(4)
    assert len(_runs_with_commit(airflow_e2e, dag_id, second.id)) == 1
    assert len(_asset_events_for(airflow_e2e, dag_id, second.id)) == 1
