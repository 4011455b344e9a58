"""The pods our operators build: valid Kubernetes objects, credentials only through a Secret."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from kubernetes.client import ApiClient

from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.pod import STARTUP_CHECK_SECONDS, AttemptPlan, LakeFSPodOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator
from airflow_mlrepo.pinning import PinnedInput

KUBERNETES_VERSION = "1.33.0"
ACCESS_KEY = "AKIAUNITTESTKEY00001"
SECRET_KEY = "unit/test+secret/value/that/must/not/leak00"
COMMIT = "a" * 64
MODEL_COMMIT = "b" * 64


@pytest.fixture(autouse=True)
def lakefs_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "lakefs", "host": "http://lakefs.internal:8000", "login": ACCESS_KEY, "password": SECRET_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_LAKEFS_DEFAULT", json.dumps(conn))


def _context(op: LakeFSPodOperator) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="iris", task_id=op.task_id, try_number=2, map_index=-1)
    return {
        "ti": ti,
        "run_id": "scheduled__2026-11-01T00:00:00+00:00",
        "dag": SimpleNamespace(dag_id="iris"),
        "task": op,
        "data_interval_end": datetime(2026, 11, 1, tzinfo=timezone.utc),
    }


def _plan(op: LakeFSPodOperator) -> AttemptPlan:
    pins = {
        name: PinnedInput(name, LakeFSLocation.parse(uri), COMMIT, "as_of", "2026-11-01T00:00:00+00:00")
        for name, uri in op.inputs.items()
    }
    if op.model_input:
        pins[op.model_input] = PinnedInput(
            op.model_input, LakeFSLocation.parse("lakefs://iris-models/main/model/"), MODEL_COMMIT, "latest"
        )
    target = LakeFSLocation.parse(op.output_location)
    return AttemptPlan(target, pins, "mlrepo-train-0123456789ab-try2", "mlrepo-train-0123456789ab-", "f" * 64)


OPERATORS = [
    lambda: LakeFSTrainingOperator(
        task_id="train",
        namespace="ml",
        image="ghcr.io/example/iris-train:1.0",
        cmds=["python", "-m", "mlrepo_iris.train"],
        inputs={"training_data": "lakefs://iris-train/main/data/"},
        output_location="lakefs://iris-models/main/model/",
        hyperparameters={"C": 1.0},
    ),
    lambda: LakeFSInferenceOperator(
        task_id="predict",
        namespace="ml",
        image="ghcr.io/example/iris-predict:1.0",
        cmds=["python", "-m", "mlrepo_iris.predict"],
        inputs={"input_data": "lakefs://iris-input/main/batches/"},
        model="lakefs://iris-models/main/model/",
        output_location="lakefs://iris-predictions/main/predictions/",
        env_vars={"LOG_LEVEL": "debug"},
        lakefs_secret_name="team-lakefs",
        lakefs_endpoint_in_pod="http://lakefs.lakefs.svc:8000",
    ),
]


@pytest.mark.parametrize("make_operator", OPERATORS)
def test_pod_is_a_valid_kubernetes_object_without_literal_credentials(make_operator: Any) -> None:
    op = make_operator()
    context = _context(op)
    op.prepare_pod_environment(op.contract_environment(context, _plan(op)))  # type: ignore[arg-type]
    with mock.patch.object(KubernetesHook, "is_in_cluster", new_callable=mock.PropertyMock, return_value=False):
        pod = op.build_pod_request_obj(context)  # type: ignore[arg-type]
    manifest = ApiClient().sanitize_for_serialization(pod)
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")

    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)

    dumped = json.dumps(manifest)
    assert SECRET_KEY not in dumped
    assert ACCESS_KEY not in dumped
    env = {e["name"]: e for e in manifest["spec"]["containers"][0]["env"]}
    for variable in ("LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == op.lakefs_secret_name
        assert "value" not in env[variable]
    assert env["MLREPO_OUTPUT"][
        "value"
    ] == f"lakefs://{op.output_location.split('/')[2]}/mlrepo-train-0123456789ab-try2/" + (
        LakeFSLocation.parse(op.output_location).path
    )
    for name in op.inputs:
        assert env[f"MLREPO_INPUT_{name.upper()}"]["value"].split("/")[3] == COMMIT
    assert env["LAKEFS_ENDPOINT"]["value"] == (op.lakefs_endpoint_in_pod or "http://lakefs.internal:8000")
    if op.model_input:
        assert env["MLREPO_MODEL"]["value"] == f"lakefs://iris-models/{MODEL_COMMIT}/model/"
        assert env["LOG_LEVEL"]["value"] == "debug"
    assert manifest["metadata"]["labels"]["mlrepo/output-kind"] == op.output_kind
    assert json.loads(manifest["metadata"]["annotations"]["mlrepo/inputs"])


def test_dry_run_builds_without_cluster_or_plan() -> None:
    op = OPERATORS[0]()
    pod = op.build_pod_request_obj(dry_run=True)
    manifest = ApiClient().sanitize_for_serialization(pod)
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert SECRET_KEY not in json.dumps(manifest)


def test_constructor_does_no_io() -> None:
    with mock.patch("airflow_mlrepo.hooks.lakefs.LakeFSHook.get_connection", side_effect=AssertionError("I/O")):
        op = OPERATORS[1]()
    assert op.model_version == "latest"
    assert "inputs" in op.template_fields
    assert "model_version" in op.template_fields
    assert "output_location" in op.template_fields


def test_an_operator_outside_a_dag_has_no_upstream_detections() -> None:
    """``self.dag`` raises in the Task SDK when no DAG is set: a bare operator (the cluster harness's,
    or one a user runs by hand) pins its inputs without an upstream sensor instead of failing."""
    op = LakeFSTrainingOperator(
        task_id="train",
        inputs={"training_data": "lakefs://data/main/d/"},
        output_location="lakefs://models/main/model/",
        image="example/train:1",
    )
    assert op.get_dag() is None
    assert op.upstream_detections({"ti": SimpleNamespace()}) == []  # type: ignore[arg-type]


def test_a_starting_pod_is_checked_every_second_unless_the_dag_says_otherwise() -> None:
    """KubernetesPodOperator's 5 s start check made a 1 s pod start cost up to 5 s (docs/benchmarks.md)."""
    assert OPERATORS[0]().startup_check_interval_seconds == STARTUP_CHECK_SECONDS == 1
    own = LakeFSTrainingOperator(
        task_id="train",
        image="ghcr.io/example/iris-train:1.0",
        inputs={"training_data": "lakefs://iris-train/main/data/"},
        output_location="lakefs://iris-models/main/model/",
        startup_check_interval_seconds=7,
    )
    assert own.startup_check_interval_seconds == 7
