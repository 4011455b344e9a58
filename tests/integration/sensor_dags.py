"""Run a one-sensor DAG with the real ``airflow dags test`` CLI while the test changes lakeFS.

The DAG has the :class:`LakeFSCommitSensor` and a task that writes the sensor's return value to a
JSON file, so a test can read exactly which commits the sensor returned. The run happens in a
subprocess whose output is followed line by line, so the test can wait for "the sensor is now
waiting" before it commits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).with_name("airflow"))

_DAG_FILE = """
from __future__ import annotations

import json
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from airflow_mlrepo.sensors.lakefs import LakeFSCommitSensor

SPEC = json.loads({spec!r})

with DAG(dag_id=SPEC["dag_id"], schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    sensed = LakeFSCommitSensor(task_id="wait_for_commits", **SPEC["kwargs"])

    @task
    def write_result(commits):
        with open(SPEC["result_path"], "w") as handle:
            json.dump(commits, handle)

    write_result(sensed.output)
"""


@dataclass
class SensorRun:
    """A running ``airflow dags test`` of a sensor DAG."""

    dag_id: str
    result_path: Path
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start_reading(self) -> None:
        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 120.0, after: int = 0) -> int:
        """Wait until a line matching ``pattern`` appears (at index >= ``after``); return its index."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if compiled.search(self.lines[index]):
                    return index
            if self.process.poll() is not None and self._reader is not None and not self._reader.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; output:\n{self.output[-6000:]}")

    def finish(self, timeout: float = 240.0) -> str:
        """Wait for the run to end; return the DAG run's final state."""
        self.process.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=10)
        match = re.search(r"DagRun Finished: .*?state=(\w+)", self.output)
        return match.group(1) if match else f"unknown (exit {self.process.returncode})"

    def result(self) -> list[dict[str, Any]]:
        data = json.loads(self.result_path.read_text())
        assert isinstance(data, list)
        return data


def start_sensor_run(when: datetime, **sensor_kwargs: Any) -> SensorRun:
    """Write a sensor DAG and start ``airflow dags test`` on it with logical date ``when``."""
    dag_id = f"test_sensor_{uuid.uuid4().hex[:10]}"
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    result_path = dags_folder.parent / f"{dag_id}.result.json"
    spec = {"dag_id": dag_id, "kwargs": sensor_kwargs, "result_path": str(result_path)}
    (dags_folder / f"{dag_id}.py").write_text(_DAG_FILE.format(spec=json.dumps(spec)))
    process = subprocess.Popen(
        [AIRFLOW, "dags", "test", dag_id, when.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = SensorRun(dag_id=dag_id, result_path=result_path, process=process)
    run.start_reading()
    return run
