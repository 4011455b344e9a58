"""``mlrepo demo``: the whole workflow on the local stack, in about a minute and a half.

What it does, in order (each step prints what it did and how long it took):

1. reuses (or starts) lakeFS of the local stack (:mod:`mlrepo_devstack.stack`);
2. (re)creates the demo repositories ``iris-train``, ``iris-input``, ``iris-models`` and
   ``iris-predictions`` (the ones ``dags/iris_daily.py`` reads and writes), so it can run again and
   again;
3. seeds two simulated days of data: each day one training slice and one inference batch, each a
   lakeFS commit dated on its day (lakeFS ``CommitCreation.date``);
4. brings up the stack's Airflow (api-server, scheduler, dag-processor, triggerer on the stack's
   PostgreSQL; :mod:`mlrepo_devstack.stack.airflow_services`) with the two example DAGs in its DAGs
   folder (kept paused, so new commits do not start runs of their own while the demo works); the
   runner is ``local``, so the DAGs' container commands run as local processes;
5. runs the example DAGs with the real ``dag.test()`` (what ``airflow dags test`` runs) on that
   metadata database for each day: train on the training data as of that day, predict that day's
   input with the newest model. The runs, their task logs and extra links are then in the stack's
   Airflow UI, which stays up when the demo ends (``mlrepo stack down`` stops it);
6. commits new training data (day 3) and runs the next day: a new model is trained from it;
7. clears the first day's run and runs its ``predict`` task again (``train`` is marked done): the
   old input is predicted with the new model, a backtest;
8. prints the provenance of the newest prediction (:mod:`airflow_mlrepo.provenance_report`), checks
   it against the commits the demo created, and prints where to look: the URLs and logins of
   Airflow, lakeFS and (where it runs) Marquez.

Running it again is safe: the repositories are recreated, and the same logical dates replace the
earlier demo's Airflow runs (same run ids).

Lineage: when Marquez runs (``MARQUEZ_URL`` in ``stack.env``: the stack's own, or the external one
named by ``MLREPO_MARQUEZ_URL``), OpenLineage events go to it through the provider's outbox (with
``MARQUEZ_API_KEY`` as the API key if set); otherwise they stay in the outbox and the demo says so.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import LakeFSConflictError, LakeFSNotFoundError, MlRepoError, StackError
from airflow_mlrepo.hooks.lakefs import LakeFSConnectionSettings, LakeFSHook
from airflow_mlrepo.provenance_report import Links, ProvenanceNode, trace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from airflow_mlrepo.hooks.lakefs import LakeFSCommit

#: The example DAGs the demo runs (``dags/<dag_id>.py``); they name their repositories
#: ``<prefix>-train``, ``-input``, ``-models``, ``-predictions`` with the prefix from ``$MLREPO_IRIS_REPO_PREFIX``.
TRAINING_DAG = "iris_training"
INFERENCE_DAG = "iris_inference"
DAG_IDS = (TRAINING_DAG, INFERENCE_DAG)
REPO_PREFIX_VARIABLE = "MLREPO_IRIS_REPO_PREFIX"
DEFAULT_REPO_PREFIX = "iris"
ROLES = ("train", "input", "models", "predictions")
PREDICTIONS_PATH = "predictions/"
TRAINING_PATH = "data/"
INPUT_PATH = "batches/"
TRAINING_PARTS = 3
INPUT_PARTS = 5
STEPS = 8
#: A run's output must finish within this many seconds.
RUN_TIMEOUT = 600.0
STARTUP_TIMEOUT = 300.0
#: How long the stack's dag-processor may take to register the example DAGs.
REGISTER_TIMEOUT = 300.0


class DemoError(MlRepoError):
    """A demo step failed; the message says which, and where its full log is."""


def repository_root() -> Path:
    """The source checkout this package runs from: the nearest folder above it with ``dags/`` in it
    (``devstack/src/mlrepo_devstack/demo.py`` sits three levels below the checkout's root)."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "dags" / f"{TRAINING_DAG}.py").is_file():
            return folder
    return here.parents[3]


@dataclass(frozen=True)
class DemoSettings:
    """Where the demo keeps its files and what it names things."""

    home: Path
    dags_source: Path
    #: Added to the repository prefix (``iris-<suffix>-train``): lets tests run beside a user's demo.
    repository_suffix: str = ""
    airflow_ui: str | None = None

    @classmethod
    def from_stack(cls, env: Mapping[str, str], **overrides: Any) -> DemoSettings:
        state = Path(env.get("MLREPO_HOME") or Path.home() / ".local/share/airflow-mlrepo")
        return cls(
            home=overrides.pop("home", None) or state / "demo",
            dags_source=overrides.pop("dags_source", None) or repository_root() / "dags",
            airflow_ui=overrides.pop("airflow_ui", None),
            **overrides,
        )

    @property
    def repository_prefix(self) -> str:
        if self.repository_suffix:
            return f"{DEFAULT_REPO_PREFIX}-{self.repository_suffix}"
        return DEFAULT_REPO_PREFIX

    def repository(self, role: str) -> str:
        return f"{self.repository_prefix}-{role}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def lineage_file(self) -> Path:
        return self.home / "lineage" / "openlineage.jsonl"

    @property
    def lineage_outbox(self) -> Path:
        return self.home / "lineage" / "outbox"


@dataclass(frozen=True)
class DagRunOutcome:
    """One ``airflow dags test`` of an example DAG and the head it left on its output branch."""

    dag_id: str
    logical_date: datetime
    seconds: float
    output_commit: str
    run_id: str
    run_after: str


@dataclass
class DemoResult:
    """Everything the demo created, for its closing report and for tests."""

    repositories: dict[str, str]
    training_commits: list[str] = field(default_factory=list)
    input_commits: list[str] = field(default_factory=list)
    trainings: list[DagRunOutcome] = field(default_factory=list)
    inferences: list[DagRunOutcome] = field(default_factory=list)
    backtest: DagRunOutcome | None = None
    provenance: ProvenanceNode | None = None
    newest_prediction: str = ""
    lineage: str = ""
    urls: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Progress:
    """Numbered step lines; a live spinner with elapsed time for long steps on a terminal."""

    def __init__(self, total: int, out: Callable[[str], None] | None = None) -> None:
        from rich.console import Console

        self.total = total
        self.step = 0
        self.console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        self._out = out

    def say(self, text: str) -> None:
        if self._out is not None:
            self._out(text)
        else:
            self.console.print(text, markup=False, soft_wrap=True)

    def begin(self, title: str) -> None:
        self.step += 1
        self.say(f"[{self.step}/{self.total}] {title}")

    def detail(self, text: str) -> None:
        self.say(f"      {text}")

    def run_long(self, label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
        started = time.monotonic()
        if self._out is None and self.console.is_terminal:
            with self.console.status(f"      {label} ...") as status:
                import threading

                done = threading.Event()

                def tick() -> None:
                    while not done.wait(1.0):
                        status.update(f"      {label} ... {time.monotonic() - started:.0f}s")

                ticker = threading.Thread(target=tick, daemon=True)
                ticker.start()
                try:
                    value = fn()
                finally:
                    done.set()
        else:
            self.say(f"      {label} ...")
            value = fn()
        return value, time.monotonic() - started


# ---------------------------------------------------------------- lakeFS side


def lakefs_hook(env: Mapping[str, str]) -> LakeFSHook:
    """A hook on the stack's lakeFS, from ``stack.env`` (no Airflow connection lookup)."""
    settings = LakeFSConnectionSettings(
        endpoint=env["LAKEFS_ENDPOINT"],
        access_key_id=env["LAKEFS_ACCESS_KEY_ID"],
        secret_access_key=env["LAKEFS_SECRET_ACCESS_KEY"],
    )
    return LakeFSHook.from_settings(settings)


def recreate_repositories(hook: LakeFSHook, settings: DemoSettings) -> dict[str, str]:
    """Delete and create the demo repositories (a new storage namespace each time: lakeFS refuses to
    reuse one that held a repository)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    names: dict[str, str] = {}
    for role in ROLES:
        name = settings.repository(role)
        hook.delete_repository(name, missing_ok=True)
        create_repository_after_delete(hook, name, f"local://mlrepo-demo/{name}-{stamp}")
        names[role] = name
    return names


def create_repository_after_delete(
    hook: LakeFSHook, name: str, storage_namespace: str, *, timeout: float = 60.0, pause: float = 0.2
) -> None:
    """Create ``name`` right after deleting it.

    lakeFS finishes a repository deletion after answering: until then a create answers 409 ("not
    unique") and the old repository then vanishes, so a create that treated 409 as success left no
    repository at all. A conflict is therefore retried; it counts as success only when the existing
    repository has *our* storage namespace (a create lakeFS carried out but whose answer was lost).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            hook.create_repository(name, storage_namespace)
            return
        except LakeFSConflictError:
            try:
                if hook.repository_storage_namespace(name) == storage_namespace:
                    return
            except LakeFSNotFoundError:
                pass
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)


def simulated_days(now: datetime, count: int) -> list[datetime]:
    """Midnights (UTC) of the ``count`` days before today, oldest first."""
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=count - i) for i in range(count)]


def seed_day(hook: LakeFSHook, names: Mapping[str, str], day: datetime, part: int) -> tuple[LakeFSCommit, LakeFSCommit]:
    """One simulated day: training slice ``part`` at 08:00 and inference batch ``part`` at 09:00."""
    from mlrepo_iris import seed

    train_path = f"{TRAINING_PATH}{seed.object_name(part)}"
    hook.upload_object(names["train"], "main", train_path, seed.training_csv(part, TRAINING_PARTS))
    train = hook.commit(
        names["train"],
        "main",
        f"iris training data, part {part} of {TRAINING_PARTS}",
        {"mlrepo_demo.day": day.date().isoformat()},
        date=int((day + timedelta(hours=8)).timestamp()),
    )
    batch_path = f"{INPUT_PATH}batch-{day.date().isoformat()}.csv"
    hook.upload_object(names["input"], "main", batch_path, seed.inference_csv(part, INPUT_PARTS))
    batch = hook.commit(
        names["input"],
        "main",
        f"inference batch of {day.date().isoformat()}",
        {"mlrepo_demo.day": day.date().isoformat()},
        date=int((day + timedelta(hours=9)).timestamp()),
    )
    return train, batch


# ---------------------------------------------------------------- Airflow side


def install_dags(settings: DemoSettings, dags_folder: Path) -> list[Path]:
    """Copy the two example DAGs into the stack Airflow's DAGs folder (other DAG files stay)."""
    dags_folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for dag_id in DAG_IDS:
        source = settings.dags_source / f"{dag_id}.py"
        if not source.is_file():
            raise DemoError(f"The example DAG {source} is missing: run the demo from a source checkout or pass --dags")
        target = dags_folder / source.name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copy2(source, target)
        copied.append(target)
    return copied


def airflow_environment(
    settings: DemoSettings, stack_env: Mapping[str, str], stack_airflow: Mapping[str, str]
) -> dict[str, str]:
    """The demo's Airflow process: the stack Airflow's own environment (its ``AIRFLOW_HOME``,
    PostgreSQL metadata DB, DAGs folder, local runner, lakeFS connection), plus the demo's
    repository prefix and lineage target."""
    env = dict(stack_airflow)
    env.update(
        {
            "AIRFLOW_CONN_LAKEFS_DEFAULT": stack_env.get(
                "AIRFLOW_CONN_LAKEFS_DEFAULT", stack_airflow.get("AIRFLOW_CONN_LAKEFS_DEFAULT", "")
            ),
            REPO_PREFIX_VARIABLE: settings.repository_prefix,
            "AIRFLOW__OPENLINEAGE__DISABLED": "False",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlrepo-demo",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(lineage_transport(settings, stack_env)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.airflow_ui:
        env["AIRFLOW__API__BASE_URL"] = settings.airflow_ui
    if stack_env.get("MARQUEZ_URL"):
        env["AIRFLOW__MLREPO__MARQUEZ_URL"] = stack_env["MARQUEZ_URL"]
    return env


OUTBOX_TRANSPORT = "airflow_mlrepo.lineage.outbox.OutboxTransport"


def outbox_transport_available() -> bool:
    """Whether the provider's durable outbox transport (:mod:`airflow_mlrepo.lineage.outbox`) is installed."""
    import importlib.util

    return importlib.util.find_spec("airflow_mlrepo.lineage.outbox") is not None


def lineage_transport(settings: DemoSettings, stack_env: Mapping[str, str]) -> dict[str, Any]:
    """OpenLineage events go to the on-disk outbox, delivered to Marquez when it runs; without the
    outbox module, straight to Marquez over HTTP, or to a JSON-lines file when Marquez is not running."""
    from mlrepo_devstack.stack.marquez import http_transport_options

    marquez = stack_env.get("MARQUEZ_URL")
    http = http_transport_options(marquez, stack_env.get("MARQUEZ_API_KEY")) if marquez else None
    if outbox_transport_available():
        transport: dict[str, Any] = {"type": OUTBOX_TRANSPORT, "outbox_dir": str(settings.lineage_outbox)}
        if http:
            transport["http"] = http
        return transport
    if http:
        return {"type": "http", **http}
    return {"type": "file", "log_file_path": str(settings.lineage_file), "append": True}


@dataclass(frozen=True)
class StackAirflow:
    """The stack's running Airflow: where its UI is and the environment its components run with."""

    url: str
    dags_folder: Path
    environment: dict[str, str]


def start_stack_airflow(settings: DemoSettings) -> StackAirflow:
    """Bring up the stack's Airflow (idempotent) with the example DAGs in its DAGs folder."""
    from mlrepo_devstack import stack
    from mlrepo_devstack.stack import airflow_services
    from mlrepo_devstack.stack.state import StackSettings, read_secrets

    stack_settings = StackSettings.from_environ()
    folder = airflow_services.dags_folder(stack_settings)
    install_dags(settings, folder)
    try:
        current = stack.up([stack.AIRFLOW])
    except StackError as exc:
        raise DemoError(f"the stack's Airflow did not come up: {exc}") from exc
    return StackAirflow(
        url=airflow_services.api_endpoint(stack_settings),
        dags_folder=folder,
        environment=airflow_services.environment(stack_settings, read_secrets(stack_settings))
        if current[stack.AIRFLOW].is_up
        else {},
    )


def wait_for_dags(url: str, dag_ids: Sequence[str], timeout: float = REGISTER_TIMEOUT) -> None:
    """Wait until the stack's dag-processor has registered ``dag_ids`` (``GET /api/v2/dags/{id}``)."""
    import httpx

    deadline = time.monotonic() + timeout
    missing = list(dag_ids)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        while True:
            missing = [dag_id for dag_id in missing if client.get(f"/api/v2/dags/{dag_id}").status_code != 200]
            if not missing:
                return
            if time.monotonic() >= deadline:
                errors = client.get("/api/v2/importErrors").text
                raise DemoError(
                    f"the stack's Airflow at {url} did not register {', '.join(missing)} within {timeout:.0f}s; "
                    f"import errors: {errors}"
                )
            time.sleep(2.0)


def pause_dags(url: str, dag_ids: Sequence[str]) -> list[str]:
    """Pause ``dag_ids`` in the stack's Airflow (``PATCH /api/v2/dags/{id}``); the ids that were unpaused.

    New DAGs start paused, but the stack's metadata DB outlives the demo: a user (or a test) may have
    unpaused them since. The demo then drives its own runs with ``dag.test`` while that Airflow's
    scheduler shares the DB, and an unpaused DAG would get asset-triggered runs of its own from the
    demo's commits, which compete with the demo's runs (``max_active_runs``) and can fail them.
    """
    import httpx

    unpaused: list[str] = []
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for dag_id in dag_ids:
            answer = client.get(f"/api/v2/dags/{dag_id}")
            answer.raise_for_status()
            if answer.json().get("is_paused"):
                continue
            client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": True}).raise_for_status()
            unpaused.append(dag_id)
    return unpaused


def delete_earlier_runs(url: str, dag_ids: Sequence[str]) -> int:
    """Delete the runs of ``dag_ids`` (an earlier demo's, pinned to repositories since recreated)."""
    import urllib.parse

    import httpx

    removed = 0
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for dag_id in dag_ids:
            answer = client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
            answer.raise_for_status()
            for run in answer.json()["dag_runs"]:
                quoted = urllib.parse.quote(run["dag_run_id"], safe="")
                if run["state"] in ("queued", "running"):
                    # Airflow refuses to delete a run that is not finished: end it first.
                    ended = client.patch(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}", json={"state": "failed"})
                    if ended.status_code not in (200, 404):
                        raise DemoError(f"could not end run {run['dag_run_id']} of {dag_id}: {ended.text}")
                deleted = client.delete(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")
                if deleted.status_code not in (204, 404):
                    raise DemoError(f"could not delete run {run['dag_run_id']} of {dag_id}: {deleted.text}")
                removed += 1
    return removed


class DemoAirflow:
    """One Airflow process (:mod:`mlrepo_devstack.demo_worker`) that runs the demo's DAG runs in turn."""

    def __init__(self, settings: DemoSettings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = dict(env)
        self.log_file = settings.logs / "airflow.log"
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    def __enter__(self) -> DemoAirflow:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("w")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mlrepo_devstack.demo_worker"],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        try:
            self._read_answer(STARTUP_TIMEOUT, "parse the example DAGs")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _read_answer(self, timeout: float, doing: str) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdout is None:
            raise DemoError(f"Airflow is not running; cannot {doing}")
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise DemoError(f"Airflow did not {doing} within {timeout:.0f}s; log: {self.log_file}")
        line = process.stdout.readline()
        if not line:
            raise DemoError(
                f"Airflow exited (code {process.poll()}) while trying to {doing}; log: {self.log_file}\n{self._tail()}"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise DemoError(f"Airflow could not {doing}: {answer['error']}; log: {self.log_file}\n{self._tail()}")
        return answer

    def run(self, dag_id: str, logical_date: datetime, run_after: str | None = None) -> dict[str, Any]:
        """Run ``dag_id`` for ``logical_date``; with an earlier run's ``run_after``, that run again
        (same run id). Raise unless it succeeded."""
        process = self._process
        if process is None or process.stdin is None:
            raise DemoError(f"Airflow is not running; cannot run {dag_id}")
        request = {"dag_id": dag_id, "logical_date": logical_date.isoformat(), "run_after": run_after}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        answer = self._read_answer(RUN_TIMEOUT, f"run {dag_id} for {logical_date.isoformat()}")
        if answer.get("state") != "success":
            raise DemoError(
                f"DAG {dag_id} for {logical_date.isoformat()} ended in state {answer.get('state')}; "
                f"log: {self.log_file}\n{self._tail()}"
            )
        return answer


# ---------------------------------------------------------------- the demo


def _short(commit_id: str) -> str:
    return commit_id[:12]


def lakefs_ui_built(endpoint: str) -> bool:
    """Whether this lakeFS serves its web UI (a build from the Go module without npm serves a stub)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/", timeout=5) as response:
            return b"UI Not Built" not in response.read(20000)
    except OSError:
        return False


def count_lineage_events(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open() as handle:
        return sum(1 for line in handle if line.strip())


def run_demo(
    stack_env: Mapping[str, str],
    settings: DemoSettings,
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> DemoResult:
    """Run the whole demo against the running stack described by ``stack_env``."""
    started = time.monotonic()
    progress = progress or Progress(total=STEPS)
    now = now or datetime.now(timezone.utc)
    hook = lakefs_hook(stack_env)
    endpoint = stack_env["LAKEFS_ENDPOINT"]
    for folder in (settings.home, settings.logs, settings.lineage_file.parent):
        folder.mkdir(parents=True, exist_ok=True)
    settings.lineage_file.unlink(missing_ok=True)
    shutil.rmtree(settings.lineage_outbox, ignore_errors=True)

    progress.begin(f"lakeFS {hook.server_version()} at {endpoint}")
    names = recreate_repositories(hook, settings)
    progress.detail("repositories (re)created: " + ", ".join(names.values()))
    result = DemoResult(repositories=dict(names))

    progress.begin("seed two simulated days of data (lakeFS commits dated on their day)")
    day1, day2, _ = simulated_days(now, 3)
    _seed(result, progress, hook, day1, 1)
    _seed(result, progress, hook, day2, 2)

    progress.begin("the stack's Airflow: api-server, scheduler, dag-processor, triggerer on PostgreSQL")
    stack_airflow, seconds = progress.run_long("starting (or reusing) it", lambda: start_stack_airflow(settings))
    wait_for_dags(stack_airflow.url, DAG_IDS)
    paused = pause_dags(stack_airflow.url, DAG_IDS)
    removed = delete_earlier_runs(stack_airflow.url, DAG_IDS)
    progress.detail(
        f"up at {stack_airflow.url} after {seconds:.0f}s; example DAGs in {stack_airflow.dags_folder} (paused)"
        + (f"; paused again: {', '.join(paused)}" if paused else "")
        + (f"; {removed} runs of an earlier demo removed" if removed else "")
    )
    env = airflow_environment(settings, stack_env, stack_airflow.environment)
    with ExitStack() as cleanup:
        airflow, seconds = progress.run_long(
            f"parsing {', '.join(DAG_IDS)}", lambda: cleanup.enter_context(DemoAirflow(settings, env))
        )
        progress.detail(f"DAGs parsed in {seconds:.1f}s (runner=local); log: {settings.logs / 'airflow.log'}")
        _run_workflow(result, progress, hook, airflow, now)

    progress.begin("provenance of the newest prediction")
    newest = f"lakefs://{names['predictions']}/main/{PREDICTIONS_PATH}predictions.csv"
    links = Links(
        lakefs_ui=endpoint,
        airflow_ui=settings.airflow_ui or stack_airflow.url,
        marquez_api=stack_env.get("MARQUEZ_URL"),
    )
    result.provenance = trace(hook, newest, links=links)
    result.newest_prediction = newest
    check_provenance(result)
    result.lineage = describe_lineage(settings, stack_env)
    result.urls = closing_urls(
        settings, stack_env, names, result.provenance, ui_built=lakefs_ui_built(endpoint), airflow_url=stack_airflow.url
    )
    result.seconds = time.monotonic() - started
    return result


def _seed(result: DemoResult, progress: Progress, hook: LakeFSHook, day: datetime, part: int) -> None:
    names = result.repositories
    train, batch = seed_day(hook, names, day, part)
    result.training_commits.append(train.id)
    result.input_commits.append(batch.id)
    progress.detail(
        f"{day.date()}: training part {part} → lakefs://{names['train']}/{_short(train.id)}   "
        f"input batch → lakefs://{names['input']}/{_short(batch.id)}"
    )


def _run_workflow(
    result: DemoResult, progress: Progress, hook: LakeFSHook, airflow: DemoAirflow, now: datetime
) -> None:
    """Train + predict → new data → retrain + predict → clear the first prediction run."""
    names = result.repositories
    _, _, day3 = simulated_days(now, 3)
    today = day3 + timedelta(days=1)

    def run(
        dag_id: str, logical_date: datetime, what: str, output_role: str, run_after: str | None = None
    ) -> DagRunOutcome:
        answer, seconds = progress.run_long(
            f"{dag_id} for {logical_date.isoformat()}: {what}", lambda: airflow.run(dag_id, logical_date, run_after)
        )
        outcome = DagRunOutcome(
            dag_id=dag_id,
            logical_date=logical_date,
            seconds=seconds,
            output_commit=hook.get_branch_head(names[output_role], "main"),
            run_id=str(answer.get("run_id", "")),
            run_after=str(answer.get("run_after", "")),
        )
        progress.detail(f"success in {seconds:.1f}s → lakefs://{names[output_role]}/{_short(outcome.output_commit)}")
        return outcome

    def train_and_predict(logical_date: datetime) -> None:
        result.trainings.append(run(TRAINING_DAG, logical_date, "train on the data as of this time", "models"))
        result.inferences.append(
            run(INFERENCE_DAG, logical_date, "predict the input as of this time, newest model", "predictions")
        )

    progress.begin(f"train and predict through Airflow, as of {day3.date()} 00:00")
    train_and_predict(day3)

    progress.begin("new training data and input arrive: retrain, predict")
    _seed(result, progress, hook, day3, 3)
    progress.detail(
        "(deployed, these commits start the DAGs by themselves: the DAGs' asset watchers, a "
        "LakeFSCommitSensor or the lakeFS webhook; see docs/how-to/start-on-new-commits.md)"
    )
    train_and_predict(today)

    first = result.inferences[0]
    progress.begin(f"backtest: clear the {first.logical_date.date()} inference run; it predicts again")
    progress.detail(f"run {first.run_id} again: same run id and logical date, so the same pinned input")
    result.backtest = run(
        INFERENCE_DAG,
        first.logical_date,
        "model_version=latest: today's model",
        "predictions",
        run_after=first.run_after,
    )


def check_provenance(result: DemoResult) -> None:
    """The closing provenance must name exactly the commits this demo created."""
    node = result.provenance
    if node is None or result.backtest is None:
        raise DemoError("The demo has no closing provenance to check")
    expected = {
        "predictions": result.backtest.output_commit,
        "model": result.trainings[-1].output_commit,
        "training_data": result.training_commits[-1],
        "input_data": result.input_commits[1],
    }
    found = {role: getattr(node.find(role), "commit_id", None) for role in expected}
    wrong = {role: (found[role], commit) for role, commit in expected.items() if found[role] != commit}
    if wrong:
        details = "; ".join(
            f"{role}: provenance says {got}, the demo made {want}" for role, (got, want) in wrong.items()
        )
        raise DemoError(f"The provenance of {result.newest_prediction} does not match the demo's commits: {details}")


def describe_lineage(settings: DemoSettings, stack_env: Mapping[str, str]) -> str:
    transport = lineage_transport(settings, stack_env)
    marquez = stack_env.get("MARQUEZ_URL")
    if marquez:
        return f"OpenLineage events went to Marquez at {marquez}" + (
            f" (through the outbox {settings.lineage_outbox})" if transport["type"] == OUTBOX_TRANSPORT else ""
        )
    reason = stack_env.get("MARQUEZ_STATUS", "not running").split("(")[0].strip()
    if transport["type"] == OUTBOX_TRANSPORT:
        from airflow_mlrepo.lineage.outbox import Outbox

        events = Outbox(settings.lineage_outbox).status()["pending_events"]
        return (
            f"Marquez is not running here ({reason}): {events} OpenLineage events are kept in the outbox "
            f"{settings.lineage_outbox}; deliver them to a Marquez later with "
            f"`mlrepo lineage replay --outbox {settings.lineage_outbox} --url http://<marquez>:5000`"
        )
    events = count_lineage_events(settings.lineage_file)
    return (
        f"Marquez is not running here ({reason}), so OpenLineage events went to a local file instead: "
        f"{settings.lineage_file} ({events} events)"
    )


def closing_urls(
    settings: DemoSettings,
    stack_env: Mapping[str, str],
    names: Mapping[str, str],
    node: ProvenanceNode,
    *,
    ui_built: bool,
    airflow_url: str,
) -> dict[str, str]:
    """Where to look, and how to log in."""
    endpoint = stack_env["LAKEFS_ENDPOINT"].rstrip("/")
    airflow = (settings.airflow_ui or airflow_url).rstrip("/")
    urls = {
        "Airflow UI": f"{airflow}/dags/{INFERENCE_DAG}/runs (no login: the local stack makes every user an admin)",
        "lakeFS UI": (
            f"{endpoint}/repositories (login: access key ID {stack_env.get('LAKEFS_ACCESS_KEY_ID', '?')}, "
            "secret access key: `mlrepo stack env | grep LAKEFS_SECRET_ACCESS_KEY`; never printed)"
        ),
        "lakeFS UI: newest prediction commit": node.commit_url,
        "lakeFS API: its metadata": f"{endpoint}/api/v1/repositories/{names['predictions']}/commits/{node.commit_id}",
    }
    if node.airflow is not None and node.airflow.run_url:
        urls["Airflow: the run that made it"] = node.airflow.run_url
    if not ui_built:
        urls["lakeFS UI note"] = (
            "this lakeFS was built without its web UI; the API above works "
            '(credentials: eval "$(mlrepo stack env)"; curl -u $LAKEFS_ACCESS_KEY_ID:$LAKEFS_SECRET_ACCESS_KEY ...)'
        )
    if stack_env.get("MARQUEZ_URL"):
        urls["Marquez API (no login)"] = f"{stack_env['MARQUEZ_URL'].rstrip('/')}/api/v1/namespaces/mlrepo-demo/jobs"
    urls["demo's Airflow process log"] = str(settings.logs / "airflow.log")
    urls["stop everything"] = "make stack-down (or: mlrepo stack down)"
    return urls


def iter_report(result: DemoResult) -> Iterator[str]:
    """The closing lines (without the tree)."""
    if result.backtest is None:
        return
    first_model = result.trainings[0].output_commit
    yield (
        f"backtest: the {result.backtest.logical_date.date()} predictions were made with model {_short(first_model)}; "
        f"after the clear, with model {_short(result.trainings[-1].output_commit)} "
        f"(same pinned input commit {_short(result.input_commits[1])})"
    )
    yield "the provenance above matches the lakeFS commits this demo created ✓"
    yield result.lineage
    for name, url in result.urls.items():
        yield f"{name}: {url}"
    yield f"demo finished in {result.seconds:.0f}s; run it again any time (it recreates its repositories)"


def print_result(result: DemoResult, progress: Progress) -> None:
    from airflow_mlrepo.provenance_report import render_tree

    assert result.provenance is not None
    if progress._out is None:
        progress.console.print(render_tree(result.provenance))
    else:
        from airflow_mlrepo.provenance_report import render_text

        progress.say(render_text(result.provenance))
    for line in iter_report(result):
        progress.say(line)


def main_entry(stack_env: Mapping[str, str], settings: DemoSettings) -> DemoResult:
    progress = Progress(total=STEPS)
    progress.say("mlrepo demo: iris on Airflow + lakeFS, Pachyderm style (local runner, no Kubernetes)")
    result = run_demo(stack_env, settings, progress=progress)
    print_result(result, progress)
    sys.stdout.flush()
    return result
