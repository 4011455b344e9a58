"""The training and inference operators on the stack's real Kubernetes cluster (containerd, kubelet,
apiserver built from k8s.io/kubernetes), with the iris image built here from docker/iris, the real
lakeFS reached by the pods over the bridge, and credentials only from the real Secret.

The operators run in this process the way a worker runs them (``tests/integration/kubernetes_harness``);
the worker-kill test runs the first try in a child process and SIGKILLs it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from kubernetes import client as k8s_client
from mlrepo_iris import seed

from airflow_mlrepo.exceptions import PodRunError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.operators.attempts import ATTEMPT_BRANCH_PREFIX
from airflow_mlrepo.operators.pod_lifecycle import PLAN_ANNOTATION
from tests.integration.conftest import LakeFSServer, assert_no_secret_on_the_cluster
from tests.integration.kubernetes_harness import first_event, make_context, make_operator, run_to_completion
from tests.secret_scan import SecretScan

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["python", "-m", "mlrepo_iris.train"]
PREDICT = ["python", "-m", "mlrepo_iris.predict"]


def slow(command: list[str], seconds: int) -> list[str]:
    """``command`` after ``seconds`` of sleep: a pod that is still running when the test acts."""
    return ["sh", "-c", f"sleep {seconds} && exec {' '.join(command)}"]


@pytest.fixture(scope="module", autouse=True)
def no_secret_in_pod_specs_commits_or_logs(kube: k8s_client.CoreV1Api, secret_scan: SecretScan) -> Iterator[None]:
    """The pod tests end with a secret scan (issue 18); repositories are scanned as they go."""
    yield
    assert_no_secret_on_the_cluster(kube, secret_scan)


@pytest.fixture
def repos(hook: LakeFSHook, kube: k8s_client.CoreV1Api, secret_scan: SecretScan) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    data, models = f"k8s-data-{suffix}", f"k8s-models-{suffix}"
    for name in (data, models):
        hook.create_repository(name, f"local://{name}")
    hook.upload_object(data, "main", "data/part-1.csv", seed.training_csv(1, 2))
    hook.commit(data, "main", "training data, part 1")
    yield data, models
    for name in (data, models):
        secret_scan.commits(hook, name)
        hook.delete_repository(name, missing_ok=True)


def _train_kwargs(data: str, models: str, **overrides: Any) -> dict[str, Any]:
    return {
        "inputs": {"training_data": f"lakefs://{data}/main/data/"},
        "output_location": f"lakefs://{models}/main/model/",
        "hyperparameters": {"C": 1.0},
        "cmds": TRAIN,
        **overrides,
    }


def _context(op: Any, try_number: int = 1, run_id: str | None = None) -> dict[str, Any]:
    return make_context(
        op,
        dag_id="k8s_tests",
        run_id=run_id or f"manual__{uuid.uuid4().hex[:12]}",
        try_number=try_number,
        when=datetime.now(timezone.utc) + timedelta(minutes=5),
    )


def _attempt_branches(hook: LakeFSHook, repository: str) -> list[str]:
    return hook.list_branches(repository, ATTEMPT_BRANCH_PREFIX)


def _task_pods(kube: k8s_client.CoreV1Api, run_id: str, namespace: str = "default") -> list[Any]:
    from airflow.providers.cncf.kubernetes import pod_generator

    selector = f"run_id={pod_generator.make_safe_label_value(run_id)}"
    return list(kube.list_namespaced_pod(namespace, label_selector=selector).items)


def _wait_for_running_pod(kube: k8s_client.CoreV1Api, run_id: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in _task_pods(kube, run_id):
            if pod.status and pod.status.phase == "Running":
                return pod
        time.sleep(0.3)
    raise AssertionError(f"no running pod for {run_id} within {timeout}s")


# ----------------------------------------------------------------------------- the happy paths


def test_train_then_predict_pods_read_pinned_commits_with_secret_and_record_digest(
    hook: LakeFSHook,
    repos: tuple[str, str],
    kube: k8s_client.CoreV1Api,
    lakefs_server: LakeFSServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    data, models = repos
    pinned = hook.get_branch_head(data, "main")
    op = make_operator(
        "train",
        **_train_kwargs(
            data,
            models,
            do_xcom_push=True,
            cmds=["sh", "-c", "python -m mlrepo_iris.train && echo '{\"trained\": true}' > /airflow/xcom/return.json"],
        ),
    )
    result = run_to_completion(op, _context(op))
    assert result["container_result"] == {"trained": True}  # through the XCom sidecar
    head = hook.get_commit(models, "main")
    meta = head.metadata
    assert meta["mlrepo.input.training_data"] == f"lakefs://{data}/{pinned}/data/"
    assert meta["mlrepo.runner"] == "kubernetes"
    assert meta["mlrepo.image"] == "ghcr.io/airflow-mlrepo/iris:0.1.0"
    assert meta["mlrepo.image_id"].startswith(("sha256:", "ghcr.io/airflow-mlrepo/iris@sha256:"))
    assert hook.read_object_bytes(models, "main", "model/model.pkl")
    for value in meta.values():
        assert lakefs_server.secret_access_key not in value
    # the container's own output, streamed from the pod into the task log
    task_log = "".join(capfd.readouterr())
    assert "[base] [train] hyperparameters:" in task_log
    assert lakefs_server.secret_access_key not in task_log
    # the pod spec named the Secret, never the credentials
    request = op.pod_request_obj
    assert request is not None
    env = {e.name: e for e in request.spec.containers[0].env}
    assert env["LAKEFS_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "mlrepo-lakefs"
    assert env["LAKEFS_ENDPOINT"].value == "http://10.88.0.1:" + lakefs_server.endpoint.rsplit(":", 1)[1]
    assert lakefs_server.secret_access_key not in json.dumps(request.to_dict(), default=str)
    assert _attempt_branches(hook, models) == []

    hook.upload_object(data, "main", "batch/in.csv", seed.inference_csv(1, 2))
    hook.commit(data, "main", "input batch")
    predict = make_operator(
        "predict",
        inputs={"input_data": f"lakefs://{data}/main/batch/"},
        model=f"lakefs://{models}/main/model/",
        output_location=f"lakefs://{data}/main/predictions/",
        cmds=PREDICT,
        deferrable=True,
    )
    predicted = run_to_completion(predict, _context(predict))
    assert predicted["inputs"]["model"]["commit_id"] == head.id
    assert hook.read_object_bytes(data, "main", "predictions/predictions.csv").count(b"\n") > 10


# ------------------------------------------------------------------- KPO defects (issue 13)


def test_deferrable_reentry_while_pod_still_runs_defers_again_and_keeps_the_branch(
    hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api
) -> None:
    """The trigger reports an error (an API hiccup) while the pod runs: KPO re-defers; the attempt
    branch under the running pod must survive, and the pod's output is then published once."""
    data, models = repos
    before = hook.get_branch_head(models, "main")
    op = make_operator("train", **_train_kwargs(data, models, cmds=slow(TRAIN, 8), deferrable=True))
    context = _context(op)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    event = {
        "status": "error",
        "namespace": deferred.value.trigger.pod_namespace,
        "name": deferred.value.trigger.pod_name,
        "message": "Unexpected error while waiting for pod: (503) apiserver unavailable",
    }
    with pytest.raises(TaskDeferred) as again:
        op.trigger_reentry(context, event)
    assert len(_attempt_branches(hook, models)) == 1  # the running pod's branch is still there
    result = op.trigger_reentry(context, first_event(again.value))
    assert hook.get_branch_head(models, "main") == result["commit_id"] != before
    assert [c.id for c in hook.log_commits(models, "main", amount=2, first_parent=True)][1] == before
    assert _attempt_branches(hook, models) == []


def test_deferrable_reentry_takes_the_pins_from_the_pod_not_from_a_new_resolution(
    hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api
) -> None:
    """``model_version="latest"``: a model committed while the pod runs is not what the pod read."""
    data, models = repos
    train = make_operator("train", **_train_kwargs(data, models))
    model_read = run_to_completion(train, _context(train))["commit_id"]
    hook.upload_object(data, "main", "batch/in.csv", seed.inference_csv(1, 2))
    hook.commit(data, "main", "input batch")
    predict = make_operator(
        "predict",
        inputs={"input_data": f"lakefs://{data}/main/batch/"},
        model=f"lakefs://{models}/main/model/",
        output_location=f"lakefs://{data}/main/predictions/",
        cmds=slow(PREDICT, 6),
        deferrable=True,
    )
    context = _context(predict)
    with pytest.raises(TaskDeferred) as deferred:
        predict.execute(context)
    pod = kube.read_namespaced_pod(deferred.value.trigger.pod_name, deferred.value.trigger.pod_namespace)
    assert json.loads(pod.metadata.annotations[PLAN_ANNOTATION])["pins"]["model"]["commit_id"] == model_read
    # a newer model lands while the pod runs
    hook.upload_object(models, "main", "model/newer.txt", b"a newer model")
    newer = hook.commit(models, "main", "newer model")
    result = predict.trigger_reentry(context, first_event(deferred.value))
    assert result["inputs"]["model"]["commit_id"] == model_read != newer.id
    assert hook.get_commit(data, result["commit_id"]).metadata["mlrepo.input.model"].split("/")[3] == model_read


def test_retry_after_the_worker_is_killed_mid_pod_starts_a_fresh_pod_and_commits_once(
    hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api
) -> None:
    data, models = repos
    before = hook.get_branch_head(models, "main")
    run_id = f"manual__{uuid.uuid4().hex[:12]}"
    when = datetime.now(timezone.utc) + timedelta(minutes=5)
    kwargs = _train_kwargs(data, models, cmds=slow(TRAIN, 6))
    spec = {"kind": "train", "kwargs": kwargs, "dag_id": "k8s_tests", "run_id": run_id, "try_number": 1}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.kubernetes_harness", json.dumps({**spec, "when": when.isoformat()})],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first_pod = _wait_for_running_pod(kube, run_id)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    assert len(_attempt_branches(hook, models)) == 1  # try 1's branch, its pod still running

    op = make_operator("train", **kwargs)
    context = make_context(op, dag_id="k8s_tests", run_id=run_id, try_number=2, when=when)
    result = run_to_completion(op, context)

    names = [pod.metadata.name for pod in _task_pods(kube, run_id)]
    assert first_pod.metadata.name not in names  # not reattached: deleted before its branch was
    commits = [c.id for c in hook.log_commits(models, "main", amount=3, first_parent=True)]
    assert commits[:2] == [result["commit_id"], before]  # exactly one output commit
    assert hook.get_commit(models, result["commit_id"]).metadata["mlrepo.try_number"] == "2"
    assert _attempt_branches(hook, models) == []


def test_pod_deleted_mid_run_fails_naming_the_pod_and_leaves_the_target_untouched(
    hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api
) -> None:
    data, models = repos
    before = hook.get_branch_head(models, "main")
    op = make_operator("train", **_train_kwargs(data, models, cmds=slow(TRAIN, 20)))
    context = _context(op)

    def delete_when_running() -> None:
        pod = _wait_for_running_pod(kube, context["run_id"])
        kube.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)

    deleter = threading.Thread(target=delete_when_running)
    deleter.start()
    with pytest.raises(PodRunError, match=r"pod default/\S+ was deleted before it finished.*untouched"):
        run_to_completion(op, context)
    deleter.join()
    assert hook.get_branch_head(models, "main") == before
    assert _attempt_branches(hook, models) == []


def test_on_kill_deletes_the_pod(hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api) -> None:
    data, models = repos
    before = hook.get_branch_head(models, "main")
    op = make_operator("train", **_train_kwargs(data, models, cmds=slow(TRAIN, 60)))
    context = _context(op)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            run_to_completion(op, context)
        except BaseException as err:
            failures.append(err)

    worker = threading.Thread(target=work)
    worker.start()
    pod = _wait_for_running_pod(kube, context["run_id"])
    op.on_kill()  # what the task runner calls when the task is killed (SIGTERM, marked failed)
    worker.join(90)
    assert not worker.is_alive()
    assert failures
    assert _task_pods(kube, context["run_id"]) == [] or all(
        p.metadata.deletion_timestamp is not None for p in _task_pods(kube, context["run_id"])
    ), pod.metadata.name
    assert hook.get_branch_head(models, "main") == before
    assert _attempt_branches(hook, models) == []


def test_active_deadline_exceeded_fails_clearly(
    hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api
) -> None:
    data, models = repos
    before = hook.get_branch_head(models, "main")
    op = make_operator("train", **_train_kwargs(data, models, cmds=slow(TRAIN, 60), active_deadline_seconds=5))
    with pytest.raises(PodRunError, match=r"active_deadline_seconds=5.*DeadlineExceeded.*untouched"):
        run_to_completion(op, _context(op))
    assert hook.get_branch_head(models, "main") == before
    assert _attempt_branches(hook, models) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"image": "ghcr.io/airflow-mlrepo/not-built:0.1.0"},
            r"image 'ghcr.io/airflow-mlrepo/not-built:0.1.0'.*ErrImageNeverPull",
        ),
        ({"lakefs_secret_name": "no-such-secret"}, r"Secret 'no-such-secret'.*does not exist in namespace 'default'"),
        ({"namespace": "no-such-namespace"}, r"namespace 'no-such-namespace' does not exist"),
    ],
    ids=["missing-image", "missing-secret", "missing-namespace"],
)
def test_bad_pod_settings_fail_fast_naming_what_is_wrong(
    hook: LakeFSHook, repos: tuple[str, str], kube: k8s_client.CoreV1Api, overrides: dict[str, str], message: str
) -> None:
    data, models = repos
    before = hook.get_branch_head(models, "main")
    op = make_operator("train", **_train_kwargs(data, models, image_pull_policy="Never", **overrides))
    started = time.monotonic()
    with pytest.raises(PodRunError, match=message):
        run_to_completion(op, _context(op))
    assert time.monotonic() - started < 60  # not the 120 s startup timeout
    assert hook.get_branch_head(models, "main") == before
    assert _attempt_branches(hook, models) == []
