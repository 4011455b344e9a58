"""Benchmark: pods on the stack's real Kubernetes cluster, against the local runner and a bare KPO.

Prints, with medians over ``--repeat`` runs, all in one process against the same cluster and lakeFS:

- **pod create -> first log line**: a bare pod of the iris image that prints one line, from the
  create call until the line arrives on the follow-log stream;
- **iris train + predict**: ``LakeFSTrainingOperator`` then ``LakeFSInferenceOperator`` (sync) with
  ``runner=kubernetes`` and with ``runner=local`` (the same commands as local processes), and the ratio;
- **per-pod overhead of our operator**: ``LakeFSTrainingOperator`` against a bare
  ``KubernetesPodOperator`` running the same image, command and environment (writing to a scratch
  branch): pinning, attempt branch, commit and merge, Secret/namespace checks, the final pod read.

    python benchmarks/kubernetes_pods.py --repeat 3
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def first_log_line(core: Any, image: str) -> float:
    from kubernetes import client, watch

    name = f"bench-{uuid.uuid4().hex[:8]}"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="base", image=image, command=["python", "-c", "print('first line')"])],
        ),
    )
    started = time.monotonic()
    core.create_namespaced_pod("default", pod)
    try:
        while True:
            current = core.read_namespaced_pod(name, "default")
            if current.status.phase in ("Running", "Succeeded", "Failed"):
                break
            time.sleep(0.05)
        for line in watch.Watch().stream(core.read_namespaced_pod_log, name, "default", follow=True):
            if "first line" in line:
                return time.monotonic() - started
        raise RuntimeError("no log line")
    finally:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s
    from kubernetes_setup import cluster_environment
    from mlrepo_iris import seed

    from airflow_mlrepo.hooks.lakefs import LakeFSHook
    from airflow_mlrepo.operators.pod import STARTUP_CHECK_SECONDS
    from tests.integration.kubernetes_harness import IRIS_IMAGE, make_context, make_operator, run_to_completion

    core = cluster_environment()
    hook = LakeFSHook()
    suffix = uuid.uuid4().hex[:8]
    data, models = f"bench-k8s-data-{suffix}", f"bench-k8s-models-{suffix}"
    for name in (data, models):
        hook.create_repository(name, f"local://{name}")
    hook.upload_object(data, "main", "data/part-1.csv", seed.training_csv(1, 2))
    hook.upload_object(data, "main", "batch/in.csv", seed.inference_csv(1, 2))
    hook.commit(data, "main", "training data and a batch")
    when = datetime.now(timezone.utc) + timedelta(minutes=5)

    def context(op: Any) -> dict[str, Any]:
        return make_context(op, dag_id="bench", run_id=f"bench__{uuid.uuid4().hex[:10]}", try_number=1, when=when)

    def train_and_predict(runner: str) -> float:
        started = time.monotonic()
        train = make_operator(
            "train",
            runner=runner,
            inputs={"training_data": f"lakefs://{data}/main/data/"},
            output_location=f"lakefs://{models}/main/model/",
            cmds=["python", "-m", "mlrepo_iris.train"],
        )
        run_to_completion(train, context(train))
        predict = make_operator(
            "predict",
            runner=runner,
            inputs={"input_data": f"lakefs://{data}/main/batch/"},
            model=f"lakefs://{models}/main/model/",
            output_location=f"lakefs://{data}/main/predictions/",
            cmds=["python", "-m", "mlrepo_iris.predict"],
        )
        run_to_completion(predict, context(predict))
        return time.monotonic() - started

    try:
        first_lines = [first_log_line(core, IRIS_IMAGE) for _ in range(args.repeat)]
        print(f"pod create -> first log line: median {_median(first_lines):.2f}s  (runs: {first_lines})")

        kube = [train_and_predict("kubernetes") for _ in range(args.repeat)]
        local = [train_and_predict("local") for _ in range(args.repeat)]
        print(f"iris train + predict, runner=kubernetes: median {_median(kube):.2f}s  (runs: {kube})")
        print(f"iris train + predict, runner=local:      median {_median(local):.2f}s  (runs: {local})")
        print(f"kubernetes / local: {_median(kube) / _median(local):.2f}x")

        # KubernetesPodOperator's own default start check, read from the installed provider
        kpo_parameters = inspect.signature(KubernetesPodOperator).parameters
        kpo_startup_check = kpo_parameters["startup_check_interval_seconds"].default
        ours: list[float] = []
        bare: list[float] = []  # KPO's default start check
        bare_same_check: list[float] = []  # the start check ours uses, so the difference is our operator's work
        for _ in range(args.repeat):
            op = make_operator(
                "train",
                inputs={"training_data": f"lakefs://{data}/main/data/"},
                output_location=f"lakefs://{models}/main/model/",
                cmds=["python", "-m", "mlrepo_iris.train"],
            )
            started = time.monotonic()
            run_to_completion(op, context(op))
            ours.append(time.monotonic() - started)
            request = op.pod_request_obj
            assert request is not None
            scratch = f"bench-bare-{uuid.uuid4().hex[:8]}"
            hook.create_branch(models, scratch, "main")
            env = []
            for var in request.spec.containers[0].env:
                if var.name == "MLREPO_OUTPUT":
                    var = k8s.V1EnvVar(name=var.name, value=f"lakefs://{models}/{scratch}/model/")
                elif var.name == "MLREPO_OUTPUT_BRANCH":  # the contract checks the two agree
                    var = k8s.V1EnvVar(name=var.name, value=scratch)
                env.append(var)
            for check, runs in ((kpo_startup_check, bare), (STARTUP_CHECK_SECONDS, bare_same_check)):
                plain = KubernetesPodOperator(
                    task_id="bare",
                    image=IRIS_IMAGE,
                    cmds=["python", "-m", "mlrepo_iris.train"],
                    env_vars=env,
                    namespace="default",
                    get_logs=True,
                    startup_check_interval_seconds=check,
                )
                started = time.monotonic()
                plain.execute(context(plain))  # type: ignore[arg-type]
                runs.append(time.monotonic() - started)
            hook.delete_branch(models, scratch, missing_ok=True)
        print(f"LakeFSTrainingOperator pod task: median {_median(ours):.2f}s  (runs: {ours})")
        print(
            f"bare KubernetesPodOperator, same image/command/env, start check every {kpo_startup_check}s: "
            f"median {_median(bare):.2f}s  (runs: {bare})"
        )
        print(
            f"bare KubernetesPodOperator, start check every {STARTUP_CHECK_SECONDS}s as ours: "
            f"median {_median(bare_same_check):.2f}s  (runs: {bare_same_check})"
        )
        print(f"per-pod overhead of our operator: {_median(ours) - _median(bare_same_check):+.2f}s")
    finally:
        for name in (data, models):
            hook.delete_repository(name, missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
