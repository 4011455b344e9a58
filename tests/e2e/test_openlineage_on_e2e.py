"""OpenLineage is really on in the stack's Airflow: the running api-server loaded the openlineage
listener, and a DAG run the scheduler makes reports its DAG-run START and COMPLETE (the scheduler's
listener) and its task's START and COMPLETE (the worker's) to the configured transport: the stack's
outbox, delivered to Marquez when one runs (its own, or ``MLREPO_MARQUEZ_URL``)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from mlrepo_devstack import stack
from mlrepo_devstack.stack import airflow_services

from airflow_mlrepo.exceptions import MarquezReadError
from airflow_mlrepo.lineage.marquez_reader import MarquezReader
from airflow_mlrepo.lineage.outbox import Outbox
from tests.e2e.conftest import AirflowE2E, new_dag_id

DAG_SOURCE = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):

    @task
    def hello() -> str:
        return "hello"

    hello()
"""


def _outbox_events(outbox: Outbox) -> list[dict[str, Any]]:
    events = []
    for entry in outbox.pending():
        try:
            events.extend(json.loads(line) for line in entry.read_text().splitlines() if line.strip())
        except FileNotFoundError:  # delivered in the meantime
            continue
    return events


def _marquez_events(marquez: MarquezReader | None, job: str) -> set[str]:
    """START (Marquez set ``startedAt``) and COMPLETE (state COMPLETED) of the job's runs in Marquez."""
    if marquez is None:
        return set()
    path = f"/api/v1/namespaces/{airflow_services.LINEAGE_NAMESPACE}/jobs/{urllib.parse.quote(job, safe='')}/runs"
    try:
        runs = marquez.get(path)["runs"]
    except MarquezReadError:
        return set()
    found = set()
    for run in runs:
        if run.get("startedAt"):
            found.add("START")
        if run.get("state") == "COMPLETED":
            found.add("COMPLETE")
    return found


def test_the_stacks_api_server_and_scheduler_have_openlineage_on(airflow_e2e: AirflowE2E) -> None:
    plugins = {plugin["name"]: plugin for plugin in airflow_e2e.get("/plugins")["plugins"]}
    assert "OpenLineageProviderPlugin" in plugins, sorted(plugins)
    assert plugins["OpenLineageProviderPlugin"]["listeners"], "the api-server runs with OpenLineage disabled"

    dag_id = new_dag_id("openlineage_on")
    airflow_e2e.write_dag(dag_id, DAG_SOURCE.format(dag_id=dag_id))
    run = airflow_e2e.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
    assert airflow_e2e.wait_for_run_state(dag_id, run["dag_run_id"], ("success", "failed")) == "success"

    env = stack.read_env()
    outbox = Outbox(airflow_services.lineage_outbox(airflow_e2e.settings))
    marquez = MarquezReader(env["MARQUEZ_URL"], env.get("MARQUEZ_API_KEY")) if env.get("MARQUEZ_URL") else None
    seen: dict[str, set[str]] = {dag_id: set(), f"{dag_id}.hello": set()}

    def reported() -> bool:
        for event in _outbox_events(outbox):
            job = event.get("job", {}).get("name")
            if job in seen:
                seen[job].add(str(event["eventType"]))
        for job in seen:
            seen[job] |= _marquez_events(marquez, job)
        return all({"START", "COMPLETE"} <= states for states in seen.values())

    airflow_e2e.wait_for(f"OpenLineage events of {dag_id} in {outbox.path} or Marquez", reported, timeout=120)
