"""One OpenLineage event to the real Marquez of the local stack, read back through Marquez's API."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.transport.http import HttpConfig, HttpTransport

from tests.conftest import REAL_SERVICES


@pytest.fixture(scope="module")
def marquez_url(stack_env: dict[str, str]) -> str:
    url = stack_env.get("MARQUEZ_URL")
    if not url:
        pytest.skip(f"Marquez is not running in the local stack: {stack_env.get('MARQUEZ_STATUS', 'unknown')}")
    REAL_SERVICES["Marquez"] = url
    return url


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_event_round_trips_through_marquez(marquez_url: str) -> None:
    namespace = f"mlrepo-test-{uuid.uuid4().hex[:8]}"
    run_id = str(uuid.uuid4())
    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=marquez_url, endpoint="api/v1/lineage")))
    job = Job(namespace=namespace, name="train")
    inputs = [InputDataset(namespace="lakefs://iris-train", name="main/data")]
    outputs = [OutputDataset(namespace="lakefs://iris-models", name="main/model")]
    for state in (RunState.START, RunState.COMPLETE):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=datetime.now(timezone.utc).isoformat(),
                run=Run(runId=run_id),
                job=job,
                inputs=inputs,
                outputs=outputs,
                producer="https://github.com/airflow-mlrepo/airflow-mlrepo",
            )
        )

    run = _get(f"{marquez_url}/api/v1/jobs/runs/{run_id}")
    assert run["id"] == run_id
    assert run["state"] == "COMPLETED"
    quoted_ns = urllib.parse.quote(namespace, safe="")
    job_info = _get(f"{marquez_url}/api/v1/namespaces/{quoted_ns}/jobs/train")
    assert {d["name"] for d in job_info["inputs"]} == {"main/data"}  # type: ignore[union-attr,index]
    assert {d["name"] for d in job_info["outputs"]} == {"main/model"}  # type: ignore[union-attr,index]
