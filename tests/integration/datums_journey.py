"""The datum pipeline journey (issue 15) with the example DAG ``dags/iris_batch_scoring.py`` as it is, run with the
real ``airflow dags test`` (its own process, the local runner) on the real lakeFS:

1. 100 input files -> every datum scored, in 2 mapped tasks, published in one commit;
2. commit 1 % new files -> only those are scored, the rest skipped; provenance of a prediction names
   the run and mapped task that computed it;
3. delete files -> their predictions disappear, nothing is scored;
4. retrain (a new model commit) -> everything is scored again;
5. kill one mapped task's container -> only that task is retried, the output is still one commit;
6. the outputs are byte-identical to a full recompute (``reprocess_spec=every_job``).
After every run no branch of the run is left behind.

:func:`datums_journey` is the journey: ``test_datums_journey.py`` runs it with the local runner,
``test_datums_journey_kubernetes.py`` with the mapped tasks as pods on the stack's cluster
(``runner = kubernetes``), nothing else changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlrepo_iris import seed
from mlrepo_iris.dataset import DataFile
from mlrepo_iris.train import MODEL_FILE, fit

from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from airflow_mlrepo.provenance_report import trace
from tests.integration.dag_runs import AIRFLOW, DagRunResult, session_home

EXAMPLES = Path(__file__).resolve().parents[2] / "dags"
DAG_FILE = "iris_batch_scoring.py"
DAG_ID = "iris_batch_scoring"
FILES = 100
#: 2 mapped tasks per full run: enough to kill one and see only it retried, few container starts.
DATUMS_PER_TASK = 50


@contextlib.contextmanager
def scoring_repositories(hook: LakeFSHook) -> Iterator[str]:
    """The three repositories of the example DAG (their prefix) and the DAG file in the session's Airflow."""
    prefix = f"ds-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{kind}" for kind in ("input", "models", "predictions")]
    for name in names:
        hook.create_repository(name, f"local://{name}")
    home = session_home()
    home.dags_folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / DAG_FILE, home.dags_folder / DAG_FILE)
    try:
        yield prefix
    finally:
        (home.dags_folder / DAG_FILE).unlink(missing_ok=True)
        for name in names:
            hook.delete_repository(name, missing_ok=True)


def run_dag(prefix: str, conf: dict[str, object] | None = None, *, runner: str = "local") -> DagRunResult:
    env = {
        **session_home().env(),
        "MLREPO_IRIS_REPO_PREFIX": prefix,
        "MLREPO_SCORING_DATUMS_PER_TASK": str(DATUMS_PER_TASK),
        "AIRFLOW__MLREPO__RUNNER": runner,
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
    }
    command = [AIRFLOW, "dags", "test", DAG_ID]
    if conf is not None:
        command += ["-c", json.dumps(conf)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    return DagRunResult(DAG_ID, result.returncode, result.stdout + result.stderr)


def commit_model(hook: LakeFSHook, repo: str, c: float) -> str:
    _, model_bytes, _ = fit([DataFile("train.csv", seed.training_csv(1, 1))], {"C": c})
    hook.upload_object(repo, "main", f"model/{MODEL_FILE}", model_bytes)
    return hook.commit(repo, "main", f"model C={c}").id


def record(i: int) -> bytes:
    return seed.inference_csv(i % 150 + 1, 150).replace(b"iris-", f"r{i:04d}-".encode())


def last_output(hook: LakeFSHook, repo: str) -> LakeFSCommit:
    return hook.get_commit(repo, "main")


def scored(hook: LakeFSHook, repo: str, ref: str = "main") -> dict[str, bytes]:
    return {o.path: hook.read_object_bytes(repo, ref, o.path) for o in hook.list_objects(repo, ref, "scored/")}


def assert_no_run_branches(hook: LakeFSHook, repo: str) -> None:
    assert hook.list_branches(repo, "mlrepo-") == []


def tasks_of(commit: LakeFSCommit) -> list[dict[str, int]]:
    return list(json.loads(commit.metadata["mlrepo.datums.tasks"]))


class ContainerKiller(threading.Thread):
    """SIGKILL the first container process of mapped task ``map_index`` (found by its MLREPO_RUN).

    A pod's container is a process of this host too (the cluster is a single node), so the same
    search finds the local runner's subprocess and the pod's main process.
    """

    def __init__(self, map_index: int) -> None:
        super().__init__(daemon=True)
        self.map_index = map_index
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                run = next((e[len(b"MLREPO_RUN=") :] for e in environ if e.startswith(b"MLREPO_RUN=")), None)
                if run is None or not any(e.startswith(b"MLREPO_DATUMS=") for e in environ):
                    continue
                if json.loads(run).get("map_index") == self.map_index:
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed = int(pid)
                    return
            time.sleep(0.02)


def datums_journey(hook: LakeFSHook, scoring: str, *, runner: str) -> list[LakeFSCommit]:
    """The six steps with the mapped tasks on ``runner``; every batch commit that computed a prediction."""
    input_repo, models_repo, predictions_repo = (f"{scoring}-{kind}" for kind in ("input", "models", "predictions"))
    commit_model(hook, models_repo, 1.0)
    for i in range(FILES):
        hook.upload_object(input_repo, "main", f"records/{i:04d}.csv", record(i))
    hook.upload_object(input_repo, "main", "README.txt", b"not under records/: never a datum\n")
    hook.commit(input_repo, "main", f"{FILES} records")

    # 1. first run: every datum, 2 mapped tasks, one commit on the target's first-parent history
    first = run_dag(scoring, runner=runner)
    assert first.state == "success", first.output[-6000:]
    out1 = last_output(hook, predictions_repo)
    meta = out1.metadata
    assert (meta["mlrepo.datums.mode"], meta["mlrepo.datums.processed"], meta["mlrepo.datums.skipped"]) == (
        "full",
        "100",
        "0",
    )
    assert len(tasks_of(out1)) == FILES // DATUMS_PER_TASK
    assert len(scored(hook, predictions_repo)) == FILES
    assert_no_run_branches(hook, predictions_repo)

    # 2. commit 1 % new files: only that datum is processed
    hook.upload_object(input_repo, "main", f"records/{FILES:04d}.csv", record(FILES))
    new_input = hook.commit(input_repo, "main", "1 new record").id
    before = scored(hook, predictions_repo)
    second = run_dag(scoring, runner=runner)
    assert second.state == "success", second.output[-6000:]
    out2 = last_output(hook, predictions_repo)
    assert out2.parents[0] == out1.id, "one commit on the target per run"
    meta = out2.metadata
    assert (meta["mlrepo.datums.mode"], meta["mlrepo.datums.processed"], meta["mlrepo.datums.skipped"]) == (
        "incremental",
        "1",
        "100",
    )
    assert meta["mlrepo.input.input_data"].split("/")[3] == new_input
    after = scored(hook, predictions_repo)
    assert set(after) - set(before) == {f"scored/{FILES:04d}.csv/predictions.csv"}
    assert {k: after[k] for k in before} == before
    assert_no_run_branches(hook, predictions_repo)

    # provenance of a prediction names the run and mapped task that computed it, not only the last merge
    new_file = trace(hook, f"lakefs://{predictions_repo}/main/scored/{FILES:04d}.csv/predictions.csv")
    old_file = trace(hook, f"lakefs://{predictions_repo}/main/scored/0000.csv/predictions.csv")
    assert new_file.computed_by is not None
    assert old_file.computed_by is not None
    assert new_file.computed_by["run_id"] == meta["mlrepo.run_id"]
    assert old_file.computed_by["run_id"] == out1.metadata["mlrepo.run_id"]
    assert old_file.computed_by["task_id"] == "score.process"
    assert new_file.datums is not None
    assert new_file.datums["processed"] == 1

    # 3. delete 5 files: their predictions disappear, nothing is processed
    for i in range(5):
        hook.delete_prefix(input_repo, "main", f"records/{i:04d}.csv")
    hook.commit(input_repo, "main", "delete 5 records")
    third = run_dag(scoring, runner=runner)
    assert third.state == "success", third.output[-6000:]
    meta = last_output(hook, predictions_repo).metadata
    assert (meta["mlrepo.datums.processed"], meta["mlrepo.datums.deleted"], meta["mlrepo.datums.total"]) == (
        "0",
        "5",
        "96",
    )
    remaining = scored(hook, predictions_repo)
    assert len(remaining) == 96
    assert not any(path.startswith(f"scored/{i:04d}.csv/") for path in remaining for i in range(5))
    assert_no_run_branches(hook, predictions_repo)

    # 4. retrain: a new model means every datum again
    commit_model(hook, models_repo, 0.01)
    fourth = run_dag(scoring, runner=runner)
    assert fourth.state == "success", fourth.output[-6000:]
    meta = last_output(hook, predictions_repo).metadata
    assert (meta["mlrepo.datums.mode"], meta["mlrepo.datums.processed"]) == ("full", "96")
    assert "model changed" in meta["mlrepo.datums.reason"]
    incremental_state = scored(hook, predictions_repo)

    # 5. + 6. a full recompute with one mapped task's container killed: only that task is retried,
    # and the outputs are byte-identical to the incremental ones
    killer = ContainerKiller(map_index=1)
    killer.start()
    try:
        fifth = run_dag(scoring, {"reprocess_spec": "every_job"}, runner=runner)
    finally:
        killer.stop.set()
    assert killer.killed is not None, "the container of map index 1 was never seen"
    assert fifth.state == "success", fifth.output[-6000:]
    out5 = last_output(hook, predictions_repo)
    tries = {task["map_index"]: task["try_number"] for task in tasks_of(out5)}
    assert tries == {0: 1, 1: 2}
    assert out5.metadata["mlrepo.datums.reprocess_spec"] == "every_job"
    assert scored(hook, predictions_repo) == incremental_state
    assert_no_run_branches(hook, predictions_repo)
    return [
        hook.get_commit(predictions_repo, str(node.computed_by["commit_id"]))
        for node in (new_file, old_file)
        if node.computed_by is not None
    ]
