"""New lakeFS commits start DAG runs in a real Airflow: push (lakeFS action webhook), AssetWatcher,
and the deferrable / backfilled commit sensor.

Everything is real: lakeFS runs the action file in ``docs/examples`` and calls the api-server;
the triggerer runs the watcher and the sensor's trigger; the scheduler creates the runs; tasks run
on the LocalExecutor; all state is in PostgreSQL.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlrepo_devstack.stack import airflow_services
from mlrepo_devstack.stack.state import read_secrets

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.e2e.conftest import AirflowE2E, lakefs_facts, new_dag_id

ACTION_FILE = Path(__file__).parents[2] / "docs" / "examples" / "_lakefs_actions" / "airflow-mlrepo.yaml"

ASSET_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_mlrepo.pinning import asset_event_commits
from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

WATCHERS = {watchers}
ASSET = Asset("lakefs://{repo}/main/data", watchers=WATCHERS)

with DAG(
    dag_id="{dag_id}",
    schedule=[ASSET],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=16,
):

    @task
    def pinned_commits(**context):
        return asset_event_commits(context, "{repo}", "main")

    pinned_commits()
"""

WATCHER = (
    '[AssetWatcher(name="{dag_id}", trigger=LakeFSCommitEventTrigger('
    'repository="{repo}", branch="main", prefixes=["data/"], poll_interval=2))]'
)

SENSOR_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from datetime import timedelta

from airflow.sdk import DAG, DeltaDataIntervalTimetable

from airflow_mlrepo.sensors.lakefs import LakeFSCommitSensor

with DAG(
    dag_id="{dag_id}",
    schedule={schedule},
    start_date={start_date},
    catchup=False,
):
    LakeFSCommitSensor(
        task_id="wait_for_commits",
        repository="{repo}",
        branch="main",
        since_commit={since_commit},
        deferrable={deferrable},
        poke_interval=2,
        timeout=600,
    )
"""


def _runs_with_commit(airflow: AirflowE2E, dag_id: str, commit_id: str) -> list[dict[str, Any]]:
    found = []
    for run in airflow.dag_runs(dag_id):
        events = airflow.upstream_events(dag_id, run["dag_run_id"])
        if any(lakefs_facts(event).get("commit_id") == commit_id for event in events):
            found.append(run)
    return found


def _wait_for_single_run(airflow: AirflowE2E, dag_id: str, commit_id: str, timeout: float = 90.0) -> dict[str, Any]:
    airflow.wait_for(
        f"a run of {dag_id} for {commit_id}", lambda: _runs_with_commit(airflow, dag_id, commit_id), timeout
    )
    (run,) = _runs_with_commit(airflow, dag_id, commit_id)
    assert airflow.wait_for_run_state(dag_id, run["dag_run_id"], ("success", "failed")) == "success"
    return run


def write_watched_dag(airflow: AirflowE2E, dag_id: str, repo: str) -> None:
    """Write the asset DAG with a watcher on ``repo``'s main branch and wait until the watcher runs."""
    watchers = WATCHER.format(dag_id=dag_id, repo=repo)
    airflow.write_dag(dag_id, ASSET_DAG.format(dag_id=dag_id, repo=repo, watchers=watchers))
    airflow.wait_for(
        "the watcher to start",
        lambda: f"Watching branch 'main' of lakeFS repository '{repo}'" in airflow.log_of("triggerer"),
        timeout=90,
    )


def _install_action(hook: LakeFSHook, repo: str, airflow: AirflowE2E) -> None:
    action = ACTION_FILE.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{airflow.settings.airflow_port}")
    hook.upload_object(repo, "main", "_lakefs_actions/airflow-mlrepo.yaml", action.encode())
    hook.commit(repo, "main", "install the airflow-mlrepo action")


def test_webhook_commit_makes_exactly_one_run_carrying_its_commit(
    airflow_e2e: AirflowE2E, hook: LakeFSHook, repo: str, webhook_secret: str
) -> None:
    dag_id = new_dag_id("e2e_webhook")
    airflow_e2e.write_dag(dag_id, ASSET_DAG.format(dag_id=dag_id, repo=repo, watchers="[]"))
    _install_action(hook, repo, airflow_e2e)  # touches no data/: no run
    hook.upload_object(repo, "main", "data/part-1.csv", b"a,b\n1,2\n")
    commit = hook.commit(repo, "main", "new training data", {"stage": "train"})

    run = _wait_for_single_run(airflow_e2e, dag_id, commit.id)
    assert airflow_e2e.xcom(dag_id, run["dag_run_id"], "pinned_commits") == [commit.id]
    (event,) = airflow_e2e.upstream_events(dag_id, run["dag_run_id"])
    facts = lakefs_facts(event)
    assert facts["source"] == "webhook"
    assert facts["repository"] == repo
    assert facts["event_type"] == "post-commit"
    assert event["extra"]["lakefs"] is not None  # recorded by the receiver, not by a trigger

    # lakeFS ran the hook and Airflow accepted it.
    lakefs_runs = hook.client.actions_api.list_repository_runs(repo, commit=commit.id).results
    assert [r.status for r in lakefs_runs] == ["completed"]

    # A retry of the same delivery (lakeFS re-running the hook) records nothing new.
    replay = airflow_e2e.http.post(
        "/mlrepo/lakefs/events",
        json={
            "event_type": "post-commit",
            "repository_id": repo,
            "branch_id": "main",
            "commit_id": commit.id,
            "action_name": "airflow-mlrepo",
            "hook_id": "airflow_mlrepo_webhook",
        },
        headers={"X-Mlrepo-Webhook-Secret": webhook_secret},
    )
    assert replay.status_code == 200, replay.text
    assert [e["duplicate"] for e in replay.json()["events"]] == [True]
    unauthenticated = airflow_e2e.http.post("/mlrepo/lakefs/events", json={"event_type": "post-commit"})
    assert unauthenticated.status_code == 401
    time.sleep(4)
    assert len(airflow_e2e.dag_runs(dag_id)) == 1


def test_watcher_fires_once_per_commit_across_a_triggerer_restart(
    airflow_e2e: AirflowE2E, hook: LakeFSHook, repo: str
) -> None:
    dag_id = new_dag_id("e2e_watcher")
    write_watched_dag(airflow_e2e, dag_id, repo)
    hook.upload_object(repo, "main", "data/1.csv", b"1\n")
    first = hook.commit(repo, "main", "first data")
    run = _wait_for_single_run(airflow_e2e, dag_id, first.id)
    assert airflow_e2e.xcom(dag_id, run["dag_run_id"], "pinned_commits") == [first.id]
    time.sleep(4)  # the triggerer confirms the event stored, then the watermark is `first`

    settings = airflow_e2e.settings
    assert airflow_services.stop_service(settings, "triggerer")
    try:
        hook.upload_object(repo, "main", "data/2.csv", b"2\n")
        second = hook.commit(repo, "main", "second data, while the triggerer is down")
    finally:
        airflow_services.start_service(settings, read_secrets(settings), "triggerer")

    run = _wait_for_single_run(airflow_e2e, dag_id, second.id, timeout=150)
    (event,) = airflow_e2e.upstream_events(dag_id, run["dag_run_id"])
    facts = lakefs_facts(event)
    assert facts["source"] == "watcher"
    assert facts["commits"] == [second.id]
    assert facts["previous_commit_id"] == first.id  # resumed from the stored watermark
    # The real triggerer runs the watcher in shared-stream ack mode.
    resumed = f"after watermark {first.id}, in the asset state store, moved on the triggerer's acknowledgement"
    assert resumed in airflow_e2e.log_of("triggerer")
    time.sleep(6)
    runs = airflow_e2e.dag_runs(dag_id)
    assert len(runs) == 2, [r["dag_run_id"] for r in runs]
    assert len(_runs_with_commit(airflow_e2e, dag_id, first.id)) == 1  # not fired again after the restart


def test_deferrable_sensor_waits_in_the_triggerer_and_a_cleared_run_sees_the_same_commits(
    airflow_e2e: AirflowE2E, hook: LakeFSHook, repo: str
) -> None:
    dag_id = new_dag_id("e2e_sensor")
    source = SENSOR_DAG.format(
        dag_id=dag_id,
        repo=repo,
        schedule="None",
        start_date="datetime(2026, 1, 1, tzinfo=timezone.utc)",
        since_commit="None",
        deferrable="True",
    )
    airflow_e2e.write_dag(dag_id, source)
    run = airflow_e2e.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
    run_id = run["dag_run_id"]
    airflow_e2e.wait_for(
        "the sensor to defer",
        lambda: airflow_e2e.task_instance(dag_id, run_id, "wait_for_commits")["state"] == "deferred",
    )
    running = airflow_e2e.get("/dags/~/dagRuns/~/taskInstances", state="running")
    assert running["total_entries"] == 0, "a deferred sensor must hold no worker slot"

    first = hook.commit(repo, "main", "first", allow_empty=True)
    assert airflow_e2e.wait_for_run_state(dag_id, run_id, ("success", "failed")) == "success"
    assert [c["id"] for c in airflow_e2e.xcom(dag_id, run_id, "wait_for_commits")] == [first.id]

    hook.commit(repo, "main", "newer than the first attempt", allow_empty=True)
    airflow_e2e.send("POST", f"/dags/{dag_id}/dagRuns/{run_id}/clear", {"dry_run": False})
    airflow_e2e.wait_for(
        "the cleared run to start again",
        lambda: airflow_e2e.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"] != "success",
    )
    assert airflow_e2e.wait_for_run_state(dag_id, run_id, ("success", "failed")) == "success"
    ti = airflow_e2e.task_instance(dag_id, run_id, "wait_for_commits")
    assert ti["try_number"] == 2
    assert [c["id"] for c in airflow_e2e.xcom(dag_id, run_id, "wait_for_commits")] == [first.id]


def test_backfilled_sensor_run_sees_only_what_was_there_at_its_interval_end(
    airflow_e2e: AirflowE2E, hook: LakeFSHook, repo: str
) -> None:
    # 10-second data intervals aligned on the epoch. Backfill the first interval that starts after
    # the repository's first commit (lakeFS keeps whole seconds) and after the DAG is registered.
    created = hook.get_commit(repo, "main").creation_date
    dag_id = new_dag_id("e2e_backfill")
    source = SENSOR_DAG.format(
        dag_id=dag_id,
        repo=repo,
        schedule="DeltaDataIntervalTimetable(timedelta(seconds=10))",
        start_date=f"datetime.fromtimestamp({created // 10 * 10 - 60}, tz=timezone.utc)",
        since_commit="None",
        deferrable="False",
    )
    airflow_e2e.write_dag(dag_id, source, unpause=False)
    interval_start = math.ceil(max(created + 2, time.time() + 1) / 10) * 10
    interval_end = interval_start + 10
    _sleep_until(interval_start + 1.3)  # lakeFS keeps whole seconds: a commit in second A counts as at A
    in_interval = hook.commit(repo, "main", "inside the backfilled interval", allow_empty=True)
    _sleep_until(interval_end + 1.2)
    after = hook.commit(repo, "main", "after the interval end", allow_empty=True)
    start = datetime.fromtimestamp(interval_start, tz=timezone.utc)
    backfill = airflow_e2e.send(
        "POST", "/backfills", {"dag_id": dag_id, "from_date": start.isoformat(), "to_date": start.isoformat()}
    )
    airflow_e2e.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def backfill_run() -> dict[str, Any] | None:
        runs = [r for r in airflow_e2e.dag_runs(dag_id) if r["run_type"] == "backfill"]
        return runs[0] if runs else None

    run = airflow_e2e.wait_for(f"the run of backfill {backfill['id']}", backfill_run)
    assert datetime.fromisoformat(run["data_interval_start"]) == start
    state = airflow_e2e.wait_for_run_state(dag_id, run["dag_run_id"], ("success", "failed"))
    assert state == "success"
    found = [c["id"] for c in airflow_e2e.xcom(dag_id, run["dag_run_id"], "wait_for_commits")]
    assert found == [in_interval.id]
    assert after.id not in found


def _sleep_until(epoch_seconds: float) -> None:
    time.sleep(max(0.0, epoch_seconds - time.time()))
