"""Benchmark: how fast and how cheaply new lakeFS commits start DAG runs, on the local stack.

Everything runs for real: lakeFS and the stack's Airflow (api-server, scheduler, dag-processor,
triggerer on PostgreSQL; ``mlrepo stack up --only lakefs,airflow``), with the DAGs folder
``<state>/benchmark-dags``. Sub-commands:

``push``
    A DAG scheduled on ``Asset("lakefs://<repo>/main")``; the repository carries the example
    action file, so lakeFS calls the webhook receiver after each commit. For each of N commits
    (spaced by ``--spacing`` s) the latency is ``queued_at`` of the DAG run whose triggering event
    carries the commit, minus the moment the commit API call returned.
``watcher``
    The same with an ``AssetWatcher`` (``LakeFSCommitEventTrigger``, ``--interval`` s) instead of
    the webhook; commits are spaced randomly between one and two intervals (plus one second) so
    they fall at every phase of the poll cycle.
``scale``
    ``--triggers`` watchers (default 1,000) on ``--branches`` branches of one repository (each
    trigger with its own path prefix), polling every ``--interval`` s, all waiting (no commits).
    Reports the triggerer's resident memory (the ``airflow triggerer`` process tree, before and
    with the watchers) and the lakeFS ``GetBranch`` / log-walk requests per poll interval per
    watched branch over ``--window`` s, counted by lakeFS itself (its ``/metrics``).

    python benchmarks/commit_detection.py push --commits 20
    python benchmarks/commit_detection.py watcher --commits 20 --interval 5
    python benchmarks/commit_detection.py scale --triggers 1000 --branches 100 --interval 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil  # type: ignore[import-untyped]
from mlrepo_devstack import stack
from mlrepo_devstack.stack import airflow_services
from mlrepo_devstack.stack.state import StackSettings, read_secrets

from airflow_mlrepo.hooks.lakefs import LakeFSHook

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ACTION_FILE = Path(__file__).parents[1] / "docs" / "examples" / "_lakefs_actions" / "airflow-mlrepo.yaml"

ASSET_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

WATCHERS = {watchers}
with DAG(
    dag_id="{dag_id}",
    schedule=[Asset("lakefs://{repo}/main", watchers=WATCHERS)],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=100,
):
    EmptyOperator(task_id="noop")
"""

SCALE_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetAny, AssetWatcher

from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

ASSETS = [
    Asset(
        f"lakefs://{repo}/b{{i % {branches}:03d}}/p{{i}}",
        watchers=[
            AssetWatcher(
                name=f"w{{i}}",
                trigger=LakeFSCommitEventTrigger(
                    repository="{repo}", branch=f"b{{i % {branches}:03d}}", prefixes=[f"p{{i}}/"],
                    poll_interval={interval},
                ),
            )
        ],
    )
    for i in range({triggers})
]
with DAG(
    dag_id="{dag_id}",
    schedule=AssetAny(*ASSETS),
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
):
    EmptyOperator(task_id="noop")
"""


class Bench:
    """The stack (lakeFS + Airflow) as the benchmarks use it."""

    def __init__(self) -> None:
        state = StackSettings.from_environ()
        os.environ["MLREPO_DAGS_FOLDER"] = str(state.state_dir / "benchmark-dags")
        self.settings = StackSettings.from_environ()
        stack.up(["postgres", "lakefs", "airflow-db", "airflow"])
        os.environ["AIRFLOW_CONN_LAKEFS_DEFAULT"] = stack.read_env()["AIRFLOW_CONN_LAKEFS_DEFAULT"]
        self.hook = LakeFSHook()
        self.http = httpx.Client(base_url=airflow_services.api_endpoint(self.settings) + "/api/v2", timeout=60.0)
        self.dags_folder = airflow_services.dags_folder(self.settings)

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    def wait(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def new_repository(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.hook.create_repository(name, f"local://{name}")
        return name

    @contextmanager
    def dag(self, dag_id: str, source: str, *, unpause: bool = True, timeout: float = 180.0) -> Iterator[None]:
        """Write a DAG file, wait until it is registered; pause and remove it afterwards."""
        path = self.dags_folder / f"{dag_id}.py"
        path.write_text(source)
        try:
            self.wait(f"DAG {dag_id}", lambda: self.http.get(f"/dags/{dag_id}").status_code == 200, timeout)
            if unpause:
                self.http.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
            yield
        finally:
            # Airflow drops asset watchers when it parses the DAG paused: pause, re-parse, then delete.
            self.http.patch(f"/dags/{dag_id}", json={"is_paused": True})
            details = self.http.get(f"/dags/{dag_id}/details")
            if details.status_code == 200:
                self.http.put(f"/parseDagFile/{details.json()['file_token']}")
                time.sleep(15)
            path.unlink(missing_ok=True)

    def triggerer_log_has(self, text: str) -> bool:
        return text in self.settings.log_path("airflow-triggerer").read_text(errors="replace")

    def queued_at_by_commit(self, dag_id: str) -> dict[str, datetime]:
        """For each commit id carried by a run's triggering events: that run's ``queued_at``."""
        found: dict[str, datetime] = {}
        runs = self.get(f"/dags/{dag_id}/dagRuns", limit=500)["dag_runs"]
        for run in runs:
            quoted = urllib.parse.quote(run["dag_run_id"], safe="")
            events = self.get(f"/dags/{dag_id}/dagRuns/{quoted}/upstreamAssetEvents")["asset_events"]
            for event in events:
                extra = event.get("extra") or {}
                facts = extra.get("payload", extra).get("lakefs") or {}
                for commit_id in facts.get("commits") or []:
                    found[commit_id] = datetime.fromisoformat(run["queued_at"])
        return found


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _latencies(bench: Bench, dag_id: str, committed: dict[str, float], timeout: float) -> list[float]:
    runs = bench.wait(
        f"runs for {len(committed)} commits",
        lambda: (lambda found: found if set(committed) <= set(found) else None)(bench.queued_at_by_commit(dag_id)),
        timeout,
        interval=2.0,
    )
    return [runs[commit_id].timestamp() - done for commit_id, done in committed.items()]


def _commit(bench: Bench, repo: str, index: int) -> tuple[str, float]:
    bench.hook.upload_object(repo, "main", f"data/part-{index}.csv", f"{index}\n".encode())
    commit = bench.hook.commit(repo, "main", f"benchmark commit {index}")
    return commit.id, time.time()


def _report(title: str, latencies: list[float], extra: dict[str, Any]) -> dict[str, Any]:
    result = {
        "benchmark": title,
        "commits": len(latencies),
        "median_s": round(statistics.median(latencies), 3),
        "p99_s": round(percentile(latencies, 0.99), 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        **extra,
    }
    print(json.dumps(result))
    return result


def run_push(bench: Bench, commits: int, spacing: float) -> dict[str, Any]:
    repo = bench.new_repository("bench-push")
    dag_id = f"bench_push_{uuid.uuid4().hex[:6]}"
    with bench.dag(dag_id, ASSET_DAG.format(dag_id=dag_id, repo=repo, watchers="[]")):
        action = ACTION_FILE.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{bench.settings.airflow_port}")
        bench.hook.upload_object(repo, "main", "_lakefs_actions/airflow-mlrepo.yaml", action.encode())
        bench.hook.commit(repo, "main", "install the action")
        time.sleep(spacing)
        committed = {}
        for index in range(commits):
            commit_id, done = _commit(bench, repo, index)
            committed[commit_id] = done
            time.sleep(spacing)
        latencies = _latencies(bench, dag_id, committed, timeout=120)
    bench.hook.delete_repository(repo, missing_ok=True)
    return _report("push (lakeFS post-commit webhook)", latencies, {"spacing_s": spacing})


def run_watcher(bench: Bench, commits: int, interval: float) -> dict[str, Any]:
    repo = bench.new_repository("bench-watch")
    dag_id = f"bench_watch_{uuid.uuid4().hex[:6]}"
    watchers = (
        f'[AssetWatcher(name="{dag_id}", trigger=LakeFSCommitEventTrigger('
        f'repository="{repo}", branch="main", poll_interval={interval}))]'
    )
    rng = random.Random(7)
    with bench.dag(dag_id, ASSET_DAG.format(dag_id=dag_id, repo=repo, watchers=watchers)):
        bench.wait(
            "the watcher to start",
            lambda: bench.triggerer_log_has(f"Watching branch 'main' of lakeFS repository '{repo}'"),
            timeout=180,
        )
        committed = {}
        for index in range(commits):
            time.sleep(rng.uniform(interval + 1, 2 * interval + 1))
            commit_id, done = _commit(bench, repo, index)
            committed[commit_id] = done
        latencies = _latencies(bench, dag_id, committed, timeout=120)
    bench.hook.delete_repository(repo, missing_ok=True)
    return _report(f"AssetWatcher, {interval:g} s poll interval", latencies, {"interval_s": interval})


def _triggerer_tree(settings: StackSettings) -> list[psutil.Process]:
    pid = int(settings.pid_path("airflow-triggerer").read_text().split()[0])
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _rss_mib(processes: list[psutil.Process]) -> float:
    return float(sum(process.memory_info().rss for process in processes)) / 2**20


def _memory_by_process(processes: list[psutil.Process]) -> list[dict[str, Any]]:
    """RSS and USS (memory no other process shares) of each process of the triggerer tree."""
    found = []
    for process in processes:
        info = process.memory_full_info()
        found.append(
            {
                "pid": process.pid,
                "role": "supervisor" if process is processes[0] else f"child {process.name()}",
                "rss_mib": round(info.rss / 2**20, 1),
                "uss_mib": round(info.uss / 2**20, 1),
            }
        )
    return found


_METRIC = re.compile(r'^api_request_duration_seconds_count\{code="(\d+)",operation="(\w+)"\} (\S+)$')


def _lakefs_request_counts(bench: Bench) -> dict[str, float]:
    text = httpx.get(f"{bench.hook.settings.endpoint}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            counts[match.group(2)] = counts.get(match.group(2), 0.0) + float(match.group(3))
    return counts


def run_scale(bench: Bench, triggers: int, branches: int, interval: float, window: float) -> dict[str, Any]:
    repo = bench.new_repository("bench-scale")
    for index in range(branches):
        bench.hook.create_branch(repo, f"b{index:03d}", "main")
    # A fresh triggerer, so the baseline is not a heap grown by earlier triggers.
    airflow_services.stop_service(bench.settings, "triggerer")
    airflow_services.start_service(bench.settings, read_secrets(bench.settings), "triggerer")
    log_path = bench.settings.log_path("airflow-triggerer")
    bench.wait(
        "the new triggerer to start",
        lambda: log_path.read_text(errors="replace").rsplit("=== ", 1)[-1].count("Starting the triggerer") > 0,
        timeout=120,
    )
    time.sleep(15)
    baseline_processes = _triggerer_tree(bench.settings)
    rss_before = _rss_mib(baseline_processes)
    memory_before = _memory_by_process(baseline_processes)
    dag_id = f"bench_scale_{uuid.uuid4().hex[:6]}"
    source = SCALE_DAG.format(dag_id=dag_id, repo=repo, branches=branches, interval=interval, triggers=triggers)
    started = time.monotonic()
    # Watchers run only for unpaused DAGs; the DAG never runs (nothing is committed).
    with bench.dag(dag_id, source, timeout=300):

        def watching() -> int:
            text = log_path.read_text(errors="replace")
            return len(re.findall(f"Watching branch 'b\\d+' of lakeFS repository '{repo}'", text))

        bench.wait(f"{triggers} watchers to start", lambda: watching() >= triggers, timeout=900, interval=5.0)
        startup = time.monotonic() - started
        time.sleep(2 * interval)  # settle
        processes = _triggerer_tree(bench.settings)
        before = _lakefs_request_counts(bench)
        window_started = time.monotonic()
        samples = []
        while time.monotonic() - window_started < window:
            samples.append(_rss_mib(processes))
            time.sleep(5.0)
        after = _lakefs_request_counts(bench)
        elapsed = time.monotonic() - window_started
        memory_with = _memory_by_process(processes)
    bench.hook.delete_repository(repo, missing_ok=True)
    delta = {op: after.get(op, 0.0) - before.get(op, 0.0) for op in after}
    intervals = elapsed / interval
    get_branch = delta.get("GetBranch", 0.0)
    walks = sum(delta.get(op, 0.0) for op in ("LogCommits", "FindMergeBase", "GetCommit"))
    return _report_scale(
        {
            "benchmark": f"{triggers} waiting watchers on {branches} branches, {interval:g} s interval",
            "triggerer_rss_mib_before": round(rss_before, 1),
            "triggerer_rss_mib_with_triggers": round(max(samples), 1),
            "triggerer_rss_mib_added": round(max(samples) - rss_before, 1),
            "memory_before": memory_before,
            "memory_with_triggers": memory_with,
            "startup_s": round(startup, 1),
            "window_s": round(elapsed, 1),
            "getbranch_per_interval_per_branch": round(get_branch / intervals / branches, 3),
            "log_walk_requests_in_window": walks,
            "all_lakefs_requests_in_window": sum(delta.values()),
        }
    )


def _report_scale(result: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push")
    push.add_argument("--commits", type=int, default=20)
    push.add_argument("--spacing", type=float, default=2.0)
    watcher = commands.add_parser("watcher")
    watcher.add_argument("--commits", type=int, default=20)
    watcher.add_argument("--interval", type=float, default=5.0)
    scale = commands.add_parser("scale")
    scale.add_argument("--triggers", type=int, default=1000)
    scale.add_argument("--branches", type=int, default=100)
    scale.add_argument("--interval", type=float, default=10.0)
    scale.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args(argv)
    bench = Bench()
    if args.command == "push":
        run_push(bench, args.commits, args.spacing)
    elif args.command == "watcher":
        run_watcher(bench, args.commits, args.interval)
    else:
        run_scale(bench, args.triggers, args.branches, args.interval, args.window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
