"""The datum pipeline journey (``tests/integration/datums_journey.py``) with the mapped tasks as pods
on the stack's Kubernetes cluster (issues 13 and 15).

The same example DAG file as the local-runner journey; only the configuration differs:
``[mlrepo] runner = kubernetes``, the connection ``kubernetes_default`` to the cluster and the lakeFS
connection's ``lakefs_endpoint_in_pod``. Each mapped task is a pod in the namespace ``ml`` that reads
its datums at the pinned commits over the pod network with the credentials of the Secret
``mlrepo-lakefs``; the killed "container" of step 5 is the pod's main process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.pod import IMAGE_ID_METADATA
from tests.integration.conftest import assert_no_secret_on_the_cluster
from tests.integration.datums_journey import datums_journey, scoring_repositories
from tests.secret_scan import SecretScan


@pytest.fixture(autouse=True)
def no_secret_in_pod_specs_commits_or_logs(kube: Any, secret_scan: SecretScan) -> Iterator[None]:
    yield
    assert_no_secret_on_the_cluster(kube, secret_scan)


@pytest.mark.timeout(2700)
def test_the_datums_journey_runs_its_mapped_tasks_as_pods_on_the_cluster(
    hook: LakeFSHook, airflow_metadata_db: str, kube: Any, secret_scan: SecretScan
) -> None:
    with scoring_repositories(hook) as prefix:
        batches = datums_journey(hook, prefix, runner="kubernetes")
        secret_scan.commits(hook, f"{prefix}-predictions")
    assert batches, "no prediction was traced to the batch that computed it"
    for batch in batches:
        assert batch.metadata["mlrepo.runner"] == "kubernetes"
        # the digest the pod ran, from its container status (not the tag the DAG names)
        assert "sha256:" in batch.metadata[IMAGE_ID_METADATA], batch.metadata
    leftover = [
        pod.metadata.name
        for pod in kube.list_namespaced_pod("ml").items
        if (pod.metadata.labels or {}).get("dag_id") == "iris_batch_scoring"
        and pod.status.phase in ("Pending", "Running")
    ]
    assert leftover == [], f"pods of the journey still running: {leftover}"
