"""Fixtures for the end-to-end tier: the stack's real Airflow (api-server, scheduler, dag-processor,
triggerer on PostgreSQL, LocalExecutor) and the stack's real lakeFS.

The session brings up ``postgres``, ``lakefs``, ``airflow-db`` and ``airflow`` through
``mlrepo_devstack.stack`` with the DAGs folder ``<state>/e2e-dags`` (emptied at the start), and stops
the Airflow services again at the end if it started them. Tests write DAG files with
:meth:`AirflowE2E.write_dag` and talk to Airflow only through its public REST API.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlrepo_devstack import stack
from mlrepo_devstack.stack import airflow_db, airflow_services
from mlrepo_devstack.stack.state import StackSettings, read_secrets

from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.links.lakefs import OUTPUT_COMMIT_XCOM_KEY
from airflow_mlrepo.locations import LakeFSLocation
from tests.conftest import REAL_SERVICES
from tests.secret_scan import SecretScan


@dataclass
class AirflowE2E:
    """The running stack Airflow, seen through its REST API (no login: all users are admins)."""

    base_url: str
    dags_folder: Path
    settings: StackSettings

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=30.0)
        self.written: list[str] = []

    # --------------------------------------------------------------- REST helpers

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(f"/api/v2{path}", params=params)
        answer.raise_for_status()
        return answer.json()

    def send(self, method: str, path: str, body: Any) -> Any:
        answer = self.http.request(method, f"/api/v2{path}", json=body)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    # --------------------------------------------------------------- DAG files

    def write_dag(self, dag_id: str, source: str, *, unpause: bool = True, timeout: float = 120.0) -> None:
        """Write ``<dag_id>.py`` and wait until the dag-processor has registered the DAG."""
        (self.dags_folder / f"{dag_id}.py").write_text(source)
        self.written.append(dag_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.http.get(f"/api/v2/dags/{dag_id}")
            if answer.status_code == 200:
                break
            time.sleep(1.0)
        else:
            errors = self.get("/importErrors")
            raise AssertionError(f"DAG {dag_id} not registered within {timeout}s; import errors: {errors}")
        if unpause:
            self.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    # --------------------------------------------------------------- runs

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="run_after")["dag_runs"]
        return runs

    def upstream_events(self, dag_id: str, run_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        # Airflow 3.3.2 answers 500 while a run one of the events created is still queued: its
        # DagRunAssetReference requires a start_date (a ValidationError in the api-server log). Ask
        # again until that run has started.
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/upstreamAssetEvents"
        deadline = time.monotonic() + timeout
        answer = self.http.get(path)
        while answer.status_code == 500 and time.monotonic() < deadline:
            time.sleep(1.0)
            answer = self.http.get(path)
        answer.raise_for_status()
        events: list[dict[str, Any]] = answer.json()["asset_events"]
        return events

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(run_id, safe="")
        result: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}")
        return result

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        quoted = urllib.parse.quote(run_id, safe="")
        return self.get(f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/{key}")["value"]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_for_run_state(self, dag_id: str, run_id: str, states: tuple[str, ...], timeout: float = 120.0) -> str:
        quoted = urllib.parse.quote(run_id, safe="")

        def state() -> str | None:
            current = self.get(f"/dags/{dag_id}/dagRuns/{quoted}")["state"]
            return str(current) if current in states else None

        result: str = self.wait_for(f"run {run_id} of {dag_id} in {states}", state, timeout)
        if result == "failed" and "success" in states:
            print(self.failure_report(dag_id, run_id))  # shown with the test's failure
        return result

    def task_log_lines(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> list[str]:
        """One try's task log, a line per entry (Airflow 3's log API answers JSON only)."""
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.http.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        assert answer.status_code == 200, f"HTTP {answer.status_code}: {answer.text[:500]}"
        content = answer.json().get("content", [])
        lines = []
        for entry in content if isinstance(content, list) else str(content).splitlines():
            if isinstance(entry, dict):
                errors = [f"{e.get('exc_type')}: {e.get('exc_value')}" for e in entry.get("error_detail") or []]
                entry = " ".join([str(entry.get(k, "")) for k in ("timestamp", "level", "event")] + errors)
            lines.append(str(entry))
        return lines

    def failure_report(self, dag_id: str, run_id: str, tail: int = 40) -> str:
        """Each task instance's state, and the last log lines of those that failed (for a failed test's output)."""
        quoted = urllib.parse.quote(run_id, safe="")
        lines = [f"--- run {run_id} of {dag_id} failed; its task instances:"]
        for ti in self.get(f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances", limit=100)["task_instances"]:
            lines.append(f"{ti['task_id']}[{ti['map_index']}] try {ti['try_number']}: {ti['state']}")
            if ti["state"] not in ("failed", "up_for_retry"):
                continue
            try:
                entries = self.task_log_lines(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
            except AssertionError as exc:
                lines.append(f"    (log: {exc})")
                continue
            lines.extend(f"    {entry}" for entry in entries[-tail:])
        return "\n".join(lines)

    def retire_dags(self) -> None:
        """Pause the DAGs this session wrote, let them be parsed once more, then remove their files.

        Airflow drops an asset watcher's trigger when it parses the DAG paused; a DAG file deleted
        while its DAG is unpaused would leave its watchers running.
        """
        for dag_id in self.written:
            self.http.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": True})
            answer = self.http.get(f"/api/v2/dags/{dag_id}/details")
            if answer.status_code == 200:
                self.http.put(f"/api/v2/parseDagFile/{answer.json()['file_token']}")
        if self.written:
            time.sleep(10)
        for dag_id in self.written:
            (self.dags_folder / f"{dag_id}.py").unlink(missing_ok=True)

    def all_task_instances(self) -> Iterator[dict[str, Any]]:
        """Every task instance of every DAG run, with its rendered fields (paged)."""
        offset = 0
        while True:
            page = self.get("/dags/~/dagRuns/~/taskInstances", limit=100, offset=offset)
            yield from page["task_instances"]
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                return

    def log_of(self, service: str) -> str:
        return self.settings.log_path(f"airflow-{service}").read_text(errors="replace")


@dataclass(frozen=True)
class PublishedOutput:
    """What a training or inference task published: its output commit, and the pins its metadata records."""

    location: LakeFSLocation  # lakefs://repository/<commit id>/path
    metadata: dict[str, str]

    @property
    def commit_id(self) -> str:
        return self.location.ref

    def pin(self, name: str) -> tuple[str, str]:
        """(commit id, rule) of the input ``name``, from the commit's provenance metadata."""
        return LakeFSLocation.parse(self.metadata[f"mlrepo.input.{name}"]).ref, self.metadata[
            f"mlrepo.input.{name}.rule"
        ]


def published_output(
    airflow_e2e: AirflowE2E, hook: LakeFSHook, dag_id: str, run_id: str, task_id: str
) -> PublishedOutput:
    """The output commit a pod operator's task pushed (XCom ``mlrepo_output_commit``) and its metadata."""
    location = LakeFSLocation.parse(airflow_e2e.xcom(dag_id, run_id, task_id, OUTPUT_COMMIT_XCOM_KEY))
    return PublishedOutput(location, dict(hook.get_commit(location.repository, location.ref).metadata))


def lakefs_facts(event: dict[str, Any]) -> dict[str, Any]:
    """The ``lakefs`` facts of an asset event (webhook: ``extra.lakefs``; watcher: ``extra.payload.lakefs``)."""
    extra = event.get("extra") or {}
    payload = extra.get("payload", extra)
    facts: dict[str, Any] = payload.get("lakefs") or {}
    return facts


@pytest.fixture(scope="session")
def airflow_e2e() -> Iterator[AirflowE2E]:
    settings = StackSettings.from_environ()
    dags_folder = settings.state_dir / "e2e-dags"
    if dags_folder.exists():
        shutil.rmtree(dags_folder)
    dags_folder.mkdir(parents=True)
    os.environ["MLREPO_DAGS_FOLDER"] = str(dags_folder)
    settings = StackSettings.from_environ()
    was_running = airflow_services.status(settings).state == "running"
    started = time.monotonic()
    components = ["postgres", "lakefs", "airflow-db", "airflow"]
    if airflow_services.runner() == "kubernetes":  # MLREPO_RUNNER=kubernetes: the tasks run pods
        components.append(stack.KUBERNETES)
    current = stack.up(components)
    if stack.KUBERNETES in components:
        REAL_SERVICES["Kubernetes"] = current[stack.KUBERNETES].detail
    airflow = current[stack.AIRFLOW]
    REAL_SERVICES["Airflow"] = f"{airflow.version} at {airflow.endpoint} ({time.monotonic() - started:.0f}s to healthy)"
    env = stack.read_env()
    os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = env["AIRFLOW_CONN_LAKEFS_DEFAULT"]
    airflow_e2e = AirflowE2E(
        base_url=airflow_services.api_endpoint(settings), dags_folder=dags_folder, settings=settings
    )
    yield airflow_e2e
    airflow_e2e.retire_dags()
    if not was_running:
        stack.down([stack.AIRFLOW])


@pytest.fixture(scope="session")
def secret_scan(airflow_e2e: AirflowE2E) -> SecretScan:
    """The session's secret scan (issue 18): repositories are scanned as they are deleted."""
    return SecretScan.of_stack(read_secrets(airflow_e2e.settings))


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaves_its_files(airflow_e2e: AirflowE2E, secret_scan: SecretScan) -> Iterator[None]:
    """The e2e run ends with a secret scan; the session fails if any secret was found.

    Scanned: every task instance's rendered fields as Airflow stores them (the pod spec's env, command
    and arguments), the Airflow home (task logs and the lineage outbox), the stack's service logs (with
    pods: the API server's audit log of every pod spec sent), every pod object left on the cluster, and
    (as each test repository is deleted) every commit's message and metadata.
    """
    yield
    for task_instance in airflow_e2e.all_task_instances():
        where = "task instance {dag_id}/{dag_run_id}/{task_id}[{map_index}] rendered fields".format(**task_instance)
        secret_scan.json("rendered task fields", where, task_instance)
    if airflow_services.runner() == "kubernetes":
        from kubernetes import client as k8s_client
        from mlrepo_devstack.stack import kubernetes as cluster

        secret_scan.pods(k8s_client.CoreV1Api(cluster.api_client(airflow_e2e.settings)))
    secret_scan.files("airflow home", [airflow_db.airflow_home(airflow_e2e.settings)])
    secret_scan.files("stack log", [airflow_e2e.settings.logs_dir])
    hook = LakeFSHook()  # the repositories still there (a test's own fixture scanned the deleted ones)
    for repository in hook.client.repositories_api.list_repositories(amount=1000).results:
        with contextlib.suppress(Exception):  # deleted meanwhile
            secret_scan.commits(hook, repository.id)
    print(f"\n{secret_scan.report()}")
    if secret_scan.hits:
        pytest.fail(secret_scan.report())


@pytest.fixture
def hook(airflow_e2e: AirflowE2E) -> LakeFSHook:
    hook = LakeFSHook()
    REAL_SERVICES["lakeFS"] = f"{hook.server_version()} at {hook.settings.endpoint}"
    return hook


@pytest.fixture
def repo(hook: LakeFSHook, secret_scan: SecretScan) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    hook.create_repository(name, f"local://{name}")
    yield name
    secret_scan.commits(hook, name)
    hook.delete_repository(name, missing_ok=True)


@pytest.fixture
def webhook_secret(airflow_e2e: AirflowE2E) -> str:
    return read_secrets(airflow_e2e.settings)["MLREPO_WEBHOOK_SECRET"]


def new_dag_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def dump(value: Any) -> str:
    return json.dumps(value)


# ------------------------------------------------------------------ the iris example DAGs

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "dags"
IRIS_DAG_IDS = ("iris_training", "iris_inference", "iris_backtest", "iris_revert")
#: The example DAGs' parse-time settings (env with defaults), fixed per session in the copies.
_IRIS_SETTINGS = {
    'os.environ.get("MLREPO_IRIS_REPO_PREFIX", "iris")': "{prefix!r}",
    'float(os.environ.get("MLREPO_IRIS_POLL_SECONDS", "30"))': "2.0",
}


@dataclass(frozen=True)
class IrisExample:
    """The four example DAGs of ``dags/``, registered in the running Airflow, on their own repositories."""

    prefix: str

    def repo(self, kind: str) -> str:
        """``train``, ``input``, ``models`` or ``predictions``."""
        return f"{self.prefix}-{kind}"


def iris_dag_source(dag_id: str, prefix: str) -> str:
    """The example DAG file as it is, with its environment defaults replaced by this session's values.

    The running Airflow's environment is not the test's, so the repository prefix (and a 2-second
    watcher poll) are written into the copy instead of being passed as ``MLREPO_IRIS_*`` variables.
    """
    source = (EXAMPLE_DAGS / f"{dag_id}.py").read_text()
    for default, value in _IRIS_SETTINGS.items():
        source = source.replace(default, value.format(prefix=prefix))
    assert "MLREPO_IRIS_REPO_PREFIX" not in source.split('"""', 2)[2], f"{dag_id}: prefix default not replaced"
    return source


@pytest.fixture(scope="session")
def iris_example(airflow_e2e: AirflowE2E, secret_scan: SecretScan) -> Iterator[IrisExample]:
    hook = LakeFSHook()
    example = IrisExample(prefix=f"e2e-{uuid.uuid4().hex[:8]}")
    for kind in ("train", "input", "models", "predictions"):
        hook.create_repository(example.repo(kind), f"local://{example.repo(kind)}")
    for dag_id in IRIS_DAG_IDS:  # runs of an earlier session stay in the metadata DB otherwise
        airflow_e2e.http.delete(f"/api/v2/dags/{dag_id}")
    for dag_id in IRIS_DAG_IDS:
        airflow_e2e.write_dag(dag_id, iris_dag_source(dag_id, example.prefix))
    yield example
    for kind in ("train", "input", "models", "predictions"):
        secret_scan.commits(hook, example.repo(kind))
        hook.delete_repository(example.repo(kind), missing_ok=True)
