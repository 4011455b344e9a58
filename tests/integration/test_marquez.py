"""One OpenLineage event to the real Marquez of the stack (its own or ``MLREPO_MARQUEZ_URL``), read
back through Marquez's API. Everything it writes is in namespaces of its own (``mlrepo-test-<id>``,
``lakefs://mlrepo-test-<id>-*``): it never touches the demo's datasets."""

from __future__ import annotations

import urllib.parse
import uuid
from datetime import datetime, timezone

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.transport.http import HttpConfig, HttpTransport

from airflow_mlrepo.lineage.marquez_reader import MarquezReader
from tests.integration.conftest import MarquezServer


def test_event_round_trips_through_marquez(marquez_server: MarquezServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    namespace = f"mlrepo-test-{suffix}"
    run_id = str(uuid.uuid4())
    client = OpenLineageClient(transport=HttpTransport(HttpConfig.from_dict(marquez_server.http_transport())))
    job = Job(namespace=namespace, name="train")
    inputs = [InputDataset(namespace=f"lakefs://mlrepo-test-{suffix}-train", name="main/data")]
    outputs = [OutputDataset(namespace=f"lakefs://mlrepo-test-{suffix}-models", name="main/model")]
    for state in (RunState.START, RunState.COMPLETE):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=datetime.now(timezone.utc).isoformat(),
                run=Run(runId=run_id),
                job=job,
                inputs=inputs,
                outputs=outputs if state == RunState.COMPLETE else [],
                producer="https://github.com/airflow-mlrepo/airflow-mlrepo",
            )
        )

    marquez = MarquezReader(marquez_server.url, marquez_server.api_key)
    run = marquez.run(run_id)
    assert run["id"] == run_id
    assert run["state"] == "COMPLETED"
    job_info = marquez.get(f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/jobs/train")
    assert {d["name"] for d in job_info["inputs"]} == {"main/data"}
    assert {d["name"] for d in job_info["outputs"]} == {"main/model"}
