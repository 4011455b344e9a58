"""Fault trials on the stack's real Kubernetes cluster: kill the worker or delete the pod at random points.

Each trial runs one training task (the iris image, ``sleep 3`` then ``python -m mlrepo_iris.train``)
on a fresh run id. Try 1 runs in a child process (a worker), sync or deferrable at random; at a
random moment (0-12 s after it starts) the trial either SIGKILLs that worker or deletes the task's
pod. Then, as Airflow's retry would, try 2 runs in this process until it returns. Every trial checks:

- the target branch got **exactly one** new commit, and that commit holds a complete model
  (``model.pkl`` and ``metrics.json``), never a partial one;
- no attempt branch and no pod of the run is left.

Prints one row per trial and the totals; exits 1 if any trial broke an invariant.

    python benchmarks/kubernetes_fault_trials.py --trials 20 --seed 13
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    from kubernetes_setup import cluster_environment

    from airflow_mlrepo.hooks.lakefs import LakeFSHook
    from airflow_mlrepo.operators.attempts import ATTEMPT_BRANCH_PREFIX
    from tests.integration.kubernetes_harness import make_context, make_operator, run_to_completion

    core = cluster_environment()
    from airflow.providers.cncf.kubernetes import pod_generator
    from mlrepo_iris import seed

    rng = random.Random(args.seed)
    hook = LakeFSHook()
    suffix = uuid.uuid4().hex[:8]
    data, models = f"trials-data-{suffix}", f"trials-models-{suffix}"
    for name in (data, models):
        hook.create_repository(name, f"local://{name}")
    hook.upload_object(data, "main", "data/part-1.csv", seed.training_csv(1, 2))
    hook.commit(data, "main", "training data")
    kwargs = {
        "inputs": {"training_data": f"lakefs://{data}/main/data/"},
        "output_location": f"lakefs://{models}/main/model/",
        "cmds": ["sh", "-c", "sleep 3 && exec python -m mlrepo_iris.train"],
    }
    rows: list[dict[str, object]] = []
    failures = 0
    try:
        for trial in range(1, args.trials + 1):
            fault = rng.choice(["kill-worker", "delete-pod"])
            deferrable = rng.choice([False, True])
            delay = round(rng.uniform(0.0, 12.0), 1)
            run_id = f"trial__{suffix}_{trial}"
            when = datetime.now(timezone.utc) + timedelta(minutes=5)
            head_before = hook.get_branch_head(models, "main")
            spec = {
                "kind": "train",
                "kwargs": {**kwargs, "deferrable": deferrable},
                "dag_id": "fault_trials",
                "run_id": run_id,
                "try_number": 1,
                "when": when.isoformat(),
            }
            started = time.monotonic()
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.kubernetes_harness", json.dumps(spec)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            selector = f"run_id={pod_generator.make_safe_label_value(run_id)}"
            while time.monotonic() - started < delay and worker.poll() is None:
                time.sleep(0.1)
            acted = "too late (try 1 done)"
            if worker.poll() is None:
                if fault == "kill-worker":
                    worker.send_signal(signal.SIGKILL)
                    acted = f"SIGKILL at {delay}s"
                else:
                    pods = core.list_namespaced_pod("default", label_selector=selector).items
                    for pod in pods:
                        core.delete_namespaced_pod(pod.metadata.name, "default", grace_period_seconds=0)
                    acted = f"pod deleted at {delay}s" if pods else f"no pod yet at {delay}s"
            out, _ = worker.communicate(timeout=300)
            first = (
                "succeeded" if worker.returncode == 0 and '"commit_id"' in (out or "") else f"exit {worker.returncode}"
            )
            retry = "not needed"
            if first != "succeeded":
                op = make_operator("train", **kwargs, deferrable=deferrable)
                context = make_context(op, dag_id="fault_trials", run_id=run_id, try_number=2, when=when)
                try:
                    result = run_to_completion(op, context)
                    retry = "reused" if result["reused"] else "succeeded"
                except Exception as err:
                    retry = f"failed: {type(err).__name__}"
            new_commits = []
            for commit in hook.log_commits(models, "main", amount=20, first_parent=True):
                if commit.id == head_before:
                    break
                new_commits.append(commit)
            head = hook.get_branch_head(models, "main")
            names = {obj.path for obj in hook.list_objects(models, head, "model/")}
            complete = {"model/model.pkl", "model/metrics.json"} <= names
            leftovers = hook.list_branches(models, ATTEMPT_BRANCH_PREFIX)
            pods_left = [
                p.metadata.name
                for p in core.list_namespaced_pod("default", label_selector=selector).items
                if p.metadata.deletion_timestamp is None
            ]
            ok = len(new_commits) == 1 and complete and not leftovers and not pods_left
            failures += 0 if ok else 1
            row: dict[str, object] = {
                "trial": trial,
                "mode": "deferrable" if deferrable else "sync",
                "fault": fault,
                "acted": acted,
                "try 1": first,
                "try 2": retry,
                "new commits": len(new_commits),
                "model complete": complete,
                "leftovers": len(leftovers) + len(pods_left),
                "ok": ok,
                "seconds": round(time.monotonic() - started, 1),
            }
            rows.append(row)
            print(" | ".join(f"{key}: {value}" for key, value in row.items()), flush=True)
    finally:
        for name in (data, models):
            hook.delete_repository(name, missing_ok=True)
    print()
    header = list(rows[0]) if rows else []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in header) + " |")
    print(f"\n{len(rows) - failures}/{len(rows)} trials kept every invariant")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
