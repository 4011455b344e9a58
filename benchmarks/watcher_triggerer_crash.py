"""Benchmark: how often a triggerer crash makes the asset watcher lose or replay an event.

Everything runs for real on the local stack: lakeFS and the stack's Airflow (api-server, scheduler,
dag-processor, triggerer on PostgreSQL), with the DAGs folder ``<state>/benchmark-dags``. One DAG
is scheduled on ``Asset("lakefs://<repo>/main/data")``, watched by
:class:`~airflow_mlrepo.triggers.lakefs.LakeFSCommitEventTrigger` (``--interval`` s poll).

Each trial commits one file under ``data/`` on ``main``, waits a random delay (uniform in
``[0, --max-delay]`` s after the commit returned: before the watcher fires, while the triggerer
stores and confirms the event, before and after the watermark write), then SIGKILLs the whole
``airflow triggerer`` process tree (supervisor and runner: no clean shutdown) and starts it again.
The new triggerer takes the watcher over once the dead one's heartbeat is older than
``[triggerer] triggerer_health_check_threshold`` (30 s), reads the watermark back and goes on.
Before the next trial the benchmark waits until the watcher has resumed, fired if it had to, and
recorded its watermark.

At the end it counts, per commit, the asset events whose watcher payload lists the commit, and the
DAG runs those events triggered: 0 events = **lost**, 1 = **exact**, more = **replayed**. The
``fired`` column is how long after the commit the killed triggerer logged that it fired (empty:
it was killed before it fired).

    python benchmarks/watcher_triggerer_crash.py --trials 20
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from commit_detection import Bench
from mlrepo_devstack.stack import airflow_services
from mlrepo_devstack.stack.state import read_secrets

#: Seconds a trial waits after the restarted watcher's first poll for its watermark to be recorded:
#: longer than the 5 s settle of the watcher before ack mode and than a few triggerer sync rounds.
WATERMARK_WAIT_SECONDS = 7.0

ASSET_DAG = """
from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_mlrepo.triggers.lakefs import LakeFSCommitEventTrigger

ASSET = Asset(
    "lakefs://{repo}/main/data",
    watchers=[
        AssetWatcher(
            name="{dag_id}",
            trigger=LakeFSCommitEventTrigger(
                repository="{repo}", branch="main", prefixes=["data/"], poll_interval={interval}
            ),
        )
    ],
)
with DAG(
    dag_id="{dag_id}",
    schedule=[ASSET],
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=100,
):
    EmptyOperator(task_id="noop")
"""


@dataclass
class Trial:
    index: int
    commit_id: str
    kill_after_s: float
    fired_after_s: float | None  # when the killed triggerer logged the event, after the commit
    restart_s: float  # kill -> the new triggerer resumed the watcher
    events: int = 0
    runs: int = 0

    @property
    def outcome(self) -> str:
        return "lost" if self.events == 0 else "exact" if self.events == 1 else "replayed"


class TriggererLog:
    """The triggerer's log (appended across restarts), read from an offset on."""

    def __init__(self, bench: Bench) -> None:
        self.path = bench.settings.log_path("airflow-triggerer")

    def offset(self) -> int:
        return self.path.stat().st_size

    def since(self, offset: int) -> str:
        with self.path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


def _fire_line(repo: str, commit_id: str) -> str:
    return f"on branch 'main' of lakeFS repository '{repo}' (connection 'lakefs_default') up to {commit_id}"


def _resume_line(repo: str) -> str:
    return f"Resuming branch 'main' of lakeFS repository '{repo}'"


def run_trial(bench: Bench, log: TriggererLog, repo: str, index: int, delay: float, interval: float) -> Trial:
    offset = log.offset()
    bench.hook.upload_object(repo, "main", f"data/part-{index}.csv", f"{index}\n".encode())
    commit_id = bench.hook.commit(repo, "main", f"crash trial {index}").id
    committed = time.monotonic()
    fired_after: float | None = None
    while (elapsed := time.monotonic() - committed) < delay:
        if fired_after is None and _fire_line(repo, commit_id) in log.since(offset):
            fired_after = elapsed
        time.sleep(min(0.05, max(0.0, delay - elapsed)))
    killed_at = time.monotonic()
    airflow_services.kill_service(bench.settings, "triggerer")
    if fired_after is None and _fire_line(repo, commit_id) in log.since(offset):
        fired_after = delay  # logged between the last look and the kill
    restart_offset = log.offset()
    airflow_services.start_service(bench.settings, read_secrets(bench.settings), "triggerer")
    bench.wait(
        "the restarted triggerer to resume the watcher",
        lambda: _resume_line(repo) in log.since(restart_offset),
        timeout=180,
        interval=0.5,
    )
    restart = time.monotonic() - killed_at
    # The resumed watcher fires (again) on its first poll if the watermark was not recorded; wait
    # for that poll, then for the watermark to settle, so the next crash finds this one finished.
    time.sleep(2 * interval + WATERMARK_WAIT_SECONDS)
    fired = None if fired_after is None else round(fired_after, 2)
    return Trial(index, commit_id, round(delay, 2), fired, round(restart, 1))


def _asset_id(bench: Bench, uri: str) -> int:
    assets = bench.get("/assets", uri_pattern=uri, limit=100)["assets"]
    (asset,) = [asset for asset in assets if asset["uri"] == uri]
    return int(asset["id"])


def count_outcomes(bench: Bench, dag_id: str, repo: str, trials: list[Trial]) -> None:
    """Fill in each trial's asset events (those listing its commit) and the DAG runs they triggered."""
    asset_id = _asset_id(bench, f"lakefs://{repo}/main/data")
    events = bench.get("/assets/events", asset_id=asset_id, limit=1000)["asset_events"]
    event_count: Counter[str] = Counter()
    for event in events:
        facts = ((event.get("extra") or {}).get("payload") or {}).get("lakefs") or {}
        event_count.update(set(facts.get("commits") or []))
    run_count: Counter[str] = Counter()
    for run in bench.get(f"/dags/{dag_id}/dagRuns", limit=1000)["dag_runs"]:
        quoted = urllib.parse.quote(run["dag_run_id"], safe="")
        upstream = bench.get(f"/dags/{dag_id}/dagRuns/{quoted}/upstreamAssetEvents")["asset_events"]
        commits: set[str] = set()
        for event in upstream:
            facts = ((event.get("extra") or {}).get("payload") or {}).get("lakefs") or {}
            commits.update(facts.get("commits") or [])
        run_count.update(commits)
    for trial in trials:
        trial.events = event_count[trial.commit_id]
        trial.runs = run_count[trial.commit_id]


def print_table(trials: list[Trial]) -> dict[str, Any]:
    header = ("trial", "commit", "kill_s", "fired_s", "restart_s", "events", "runs")
    print("{:>5} {:<12} {:>6} {:>7} {:>9} {:>6} {:>4}  outcome".format(*header))
    for trial in trials:
        fired = "" if trial.fired_after_s is None else f"{trial.fired_after_s:.2f}"
        print(
            f"{trial.index:>5} {trial.commit_id[:12]:<12} {trial.kill_after_s:>6.2f} {fired:>7} "
            f"{trial.restart_s:>9.1f} {trial.events:>6} {trial.runs:>4}  {trial.outcome}"
        )
    outcomes = Counter(trial.outcome for trial in trials)
    totals = {
        "benchmark": "asset watcher across a SIGKILLed triggerer",
        "trials": len(trials),
        "lost": outcomes["lost"],
        "exact": outcomes["exact"],
        "replayed": outcomes["replayed"],
        "events": sum(trial.events for trial in trials),
        "runs": sum(trial.runs for trial in trials),
        "killed_before_fire": sum(trial.fired_after_s is None for trial in trials),
        "trial_details": [asdict(trial) for trial in trials],
    }
    print(json.dumps({key: value for key, value in totals.items() if key != "trial_details"}))
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-delay", type=float, default=6.0, help="kill at a uniform delay in [0, this] s")
    parser.add_argument("--interval", type=float, default=1.0, help="the watcher's poll interval, s")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", help="also write the totals and every trial to this file")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    bench = Bench()
    log = TriggererLog(bench)
    repo = bench.new_repository("bench-crash")
    dag_id = f"bench_crash_{uuid.uuid4().hex[:6]}"
    trials: list[Trial] = []
    with bench.dag(dag_id, ASSET_DAG.format(dag_id=dag_id, repo=repo, interval=args.interval)):
        bench.wait(
            "the watcher to start",
            lambda: bench.triggerer_log_has(f"Watching branch 'main' of lakeFS repository '{repo}'"),
            timeout=180,
        )
        time.sleep(2 * args.interval)
        for index in range(args.trials):
            trial = run_trial(bench, log, repo, index, rng.uniform(0.0, args.max_delay), args.interval)
            trials.append(trial)
            print(f"trial {index}: killed {trial.kill_after_s:.2f}s after the commit", flush=True)
        time.sleep(5)  # the last runs are created
        count_outcomes(bench, dag_id, repo, trials)
    bench.hook.delete_repository(repo, missing_ok=True)
    totals = print_table(trials)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(totals, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
