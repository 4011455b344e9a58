"""Run one-task DAGs of our operators with the real `airflow dags test` CLI (its own process).

Each call writes a DAG file into the session's dags folder and runs it; the run's final state and
full output (task logs included) come back for assertions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
MLREPO = str(Path(sys.executable).with_name("mlrepo"))
COPY_JOB = str(Path(__file__).with_name("containers") / "copy_job.py")

_DAG_FILE = """
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_mlrepo.operators.inference import LakeFSInferenceOperator
from airflow_mlrepo.operators.training import LakeFSTrainingOperator

SPEC = json.loads({spec!r})
OPERATORS = {{"train": LakeFSTrainingOperator, "predict": LakeFSInferenceOperator}}

with DAG(dag_id=SPEC["dag_id"], schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    OPERATORS[SPEC["kind"]](**SPEC["kwargs"])
"""


@dataclass
class DagRunResult:
    dag_id: str
    returncode: int
    output: str

    @property
    def state(self) -> str:
        match = re.search(r"DagRun Finished: .*?state=(\w+)", self.output)
        return match.group(1) if match else f"unknown (exit {self.returncode})"


@dataclass(frozen=True)
class AirflowHome:
    """An Airflow home with a migrated SQLite metadata DB and its own dags folder."""

    path: Path

    @property
    def dags_folder(self) -> Path:
        return self.path / "dags"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AIRFLOW_HOME"] = str(self.path)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(self.dags_folder)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{self.path / 'airflow.db'}"
        # a loaded machine (CI, two cores shared) can take longer than the default 30 s to import a DAG
        env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120")
        return env

    def clone(self, target: Path) -> AirflowHome:
        """A copy with the same migrated DB and an empty dags folder (for runs in parallel)."""
        (target / "dags").mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.path / "airflow.db", target / "airflow.db")
        return AirflowHome(target)


def session_home() -> AirflowHome:
    return AirflowHome(Path(os.environ["AIRFLOW_HOME"]))


def write_dag(kind: str, home: AirflowHome | None = None, **operator_kwargs: Any) -> str:
    """Write a DAG file with one operator (``kind`` train or predict); return its dag_id."""
    home = home or session_home()
    dag_id = f"test_{kind}_{uuid.uuid4().hex[:10]}"
    spec = {"dag_id": dag_id, "kind": kind, "kwargs": {"task_id": kind, "runner": "local", **operator_kwargs}}
    home.dags_folder.mkdir(parents=True, exist_ok=True)
    (home.dags_folder / f"{dag_id}.py").write_text(_DAG_FILE.format(spec=json.dumps(spec)))
    return dag_id


def remove_dag(dag_id: str, home: AirflowHome | None = None) -> None:
    """Remove a DAG file so later runs do not parse it again."""
    ((home or session_home()).dags_folder / f"{dag_id}.py").unlink(missing_ok=True)


def dags_test_command(dag_id: str, when: datetime) -> list[str]:
    return [AIRFLOW, "dags", "test", dag_id, when.isoformat()]


def manual_run_id(output: str) -> str | None:
    """The run id an ``airflow dags test`` run printed, if any."""
    match = re.search(r"run_id=(manual__[^\s,\]]+)", output)
    return match.group(1) if match else None


def cleanup_attempts_command(repository: str, home: AirflowHome, *extra: str) -> str:
    """The output of ``mlrepo cleanup attempts lakefs://<repository>`` run against ``home``'s metadata DB."""
    result = subprocess.run(
        [MLREPO, "cleanup", "attempts", f"lakefs://{repository}", *extra],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def run_task_again(dag_id: str, task_id: str, run_id: str, home: AirflowHome, *, timeout: float) -> tuple[int, str]:
    """``airflow tasks test`` of one task in an existing DAG run: its exit code and its output.

    The exit code is 0 even when the task fails; callers check the outcome in lakeFS.
    """
    result = subprocess.run(
        [AIRFLOW, "tasks", "test", dag_id, task_id, run_id],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


class BackgroundDagRun:
    """One `airflow dags test` run in the background, its output collected as it comes."""

    def __init__(self, dag_id: str, when: datetime, home: AirflowHome) -> None:
        self.process = subprocess.Popen(
            dags_test_command(dag_id, when), env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout or []), daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 180) -> str:
        """Wait for the run to end; its whole output."""
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return self.output


def run_dag(kind: str, when: datetime, **operator_kwargs: Any) -> DagRunResult:
    """Write and run a one-task DAG; ``when`` is the logical date (= its data interval end)."""
    home = session_home()
    dag_id = write_dag(kind, home, **operator_kwargs)
    try:
        result = subprocess.run(
            dags_test_command(dag_id, when), env=home.env(), capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        remove_dag(dag_id, home)
    return DagRunResult(dag_id, result.returncode, result.stdout + result.stderr)


def find_process(marker: str, timeout: float, program: str = "copy_job") -> int | None:
    """The pid of a process whose command line holds ``marker`` and ``program`` (a test's container)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and program.encode() in cmdline:
                return int(entry.name)
        time.sleep(0.02)
    return None
