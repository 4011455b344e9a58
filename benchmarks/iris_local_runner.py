"""Benchmark: the iris workflow (train, then predict) under the local runner, services already up.

Seeds fresh iris repositories (3 training commits, 1 input batch), writes the two-task DAG
`dags/iris_daily.py` pointed at them into a scratch dags folder, and runs it once with the real
`airflow dags test` (one process; the DAG file is the example's, with repository names
substituted). Prints the wall time of the whole run, of the Airflow CLI start-up, and of each task
as Airflow recorded it.

    python benchmarks/iris_local_runner.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from mlrepo_iris import seed

from airflow_mlrepo.hooks.lakefs import LakeFSHook

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def main() -> int:
    from mlrepo_devstack import stack

    stack.up(["lakefs"])
    env_file = stack.read_env()
    os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = env_file["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    hook = LakeFSHook()
    suffix = uuid.uuid4().hex[:6]
    repos = {name: f"{name}-{suffix}" for name in ("iris-train", "iris-input", "iris-models", "iris-predictions")}
    for repo in repos.values():
        hook.create_repository(repo, f"local://{repo}")
    try:
        for part in (1, 2, 3):
            hook.upload_object(repos["iris-train"], "main", f"data/iris-part-{part}.csv", seed.training_csv(part, 3))
            hook.commit(repos["iris-train"], "main", f"training data part {part}")
        hook.upload_object(repos["iris-input"], "main", "batches/batch-1.csv", seed.inference_csv(1, 1))
        hook.commit(repos["iris-input"], "main", "input batch 1")

        with tempfile.TemporaryDirectory() as home:
            dags = Path(home) / "dags"
            dags.mkdir()
            source = (ROOT / "dags" / "iris_daily.py").read_text()
            for name, repo in repos.items():
                source = source.replace(f"lakefs://{name}/", f"lakefs://{repo}/")
            (dags / "iris_daily.py").write_text(source)
            env = dict(os.environ)
            env.update(
                AIRFLOW_HOME=home,
                AIRFLOW__CORE__DAGS_FOLDER=str(dags),
                AIRFLOW__CORE__LOAD_EXAMPLES="False",
                AIRFLOW__MLREPO__RUNNER="local",
            )
            subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
            start = time.perf_counter()
            subprocess.run([AIRFLOW, "version"], env=env, check=True, capture_output=True)
            cli_startup = time.perf_counter() - start
            when = datetime.now(timezone.utc).isoformat()
            start = time.perf_counter()
            run = subprocess.run(
                [AIRFLOW, "dags", "test", "iris_daily", when], env=env, capture_output=True, text=True, check=False
            )
            total = time.perf_counter() - start
        output = run.stdout + run.stderr
        state = re.search(r"DagRun Finished: .*?state=(\w+)", output)
        if not state or state.group(1) != "success":
            print(output[-5000:], file=sys.stderr)
            return 1
        durations = {
            m.group(1): float(m.group(2)) for m in re.finditer(r"task_id=(\w+).*?run_duration=([0-9.]+)", output)
        }
        predictions = hook.read_object_bytes(
            repos["iris-predictions"], "main", f"predictions/{when[:10]}/predictions.csv"
        )
    finally:
        for repo in repos.values():
            hook.delete_repository(repo, missing_ok=True)
    print("iris train + predict under the local runner (services up), one `airflow dags test` run:")
    print(f"  whole run, wall time:                 {total:6.1f} s  (target <= 30 s)")
    print(f"  of which Airflow CLI start-up (alone): {cli_startup:6.1f} s")
    for task, seconds in durations.items():
        print(f"  task {task:<8} (Airflow run_duration): {seconds:6.1f} s")
    rows = predictions.count(b"\n") - 1
    print(f"  predictions: {rows} rows")
    return 0 if total <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
