"""Shared by the Kubernetes benchmarks: bring up lakeFS and the stack's cluster, point Airflow's
``kubernetes_default`` and ``lakefs_default`` connections (environment variables) at them."""

from __future__ import annotations

import json
import os
from typing import Any


def cluster_environment() -> Any:
    """Start (or reuse) lakeFS + the cluster, set the connections; a ``CoreV1Api`` on the cluster."""
    from kubernetes import client
    from mlrepo_devstack import stack
    from mlrepo_devstack.stack import kubernetes
    from mlrepo_devstack.stack.state import StackSettings

    stack.up(["lakefs", stack.KUBERNETES])
    env = stack.read_env()
    settings = StackSettings.from_environ()
    lakefs = json.loads(env["AIRFLOW_CONN_LAKEFS_DEFAULT"])
    lakefs["extra"] = {"lakefs_endpoint_in_pod": kubernetes.lakefs_endpoint_in_pod(settings)}
    os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = json.dumps(lakefs)
    os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(kubernetes.airflow_connection(settings))
    return client.CoreV1Api(kubernetes.api_client(settings))
