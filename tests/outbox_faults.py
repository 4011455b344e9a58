"""Kill the outbox deliverer at random points and check what a real HTTP endpoint received.

Each trial writes a fresh outbox (several runs' events interleaved, entries of one to three events),
then repeatedly forks a deliverer (:func:`airflow_mlrepo.lineage.outbox.run_deliverer`, the code the
background process runs) and SIGKILLs it after a random delay, until a last deliverer is left to
finish. The endpoint is :mod:`tests.lineage_receiver` in its own process on loopback: it records
every event it accepts and answers a random share of requests with HTTP 500. The checks: every event
arrived at least once, the first arrivals of each run are in emission order, nothing is left pending,
rejected or quarantined; duplicates are counted (at-least-once delivery resends what a kill cut off
between the endpoint's answer and the entry's rewrite).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from airflow_mlrepo.lineage.outbox import Outbox, run_deliverer


@dataclass
class FaultFigures:
    trials: int = 0
    events: int = 0
    received: int = 0
    duplicates: int = 0
    kills: int = 0
    lost: int = 0
    out_of_order: int = 0
    left_over_entries: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_events(outbox: Outbox, chooser: random.Random, runs: int, per_run: int) -> list[tuple[str, int]]:
    """Emit ``runs`` x ``per_run`` events, interleaved, in entries of 1-3 events; returns them in order."""
    order = [run for run in range(runs) for _ in range(per_run)]
    chooser.shuffle(order)
    counters = Counter[int]()
    emitted: list[tuple[str, int]] = []
    index = 0
    while index < len(order):
        size = chooser.randint(1, 3)
        lines = []
        for run in order[index : index + size]:
            run_id = f"run-{run}"
            lines.append(json.dumps({"run": {"runId": run_id}, "step": counters[run]}))
            emitted.append((run_id, counters[run]))
            counters[run] += 1
        outbox.append(lines, fsync=False)
        index += size
    return emitted


def _fork_deliverer(outbox: Outbox, url: str) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        logging.disable(logging.CRITICAL)  # its retries are expected here; the figures tell the story
        try:
            code = run_deliverer(outbox, {"url": url, "timeout": 2}, idle_exit=0.0, max_backoff=0.02)
        finally:
            os._exit(code)
    return pid


def run_trials(workdir: Path, *, trials: int, seed: int = 20261201, fail_rate: float = 0.1) -> FaultFigures:
    figures = FaultFigures()
    chooser = random.Random(seed)
    port = _free_port()
    record = workdir / "received.jsonl"
    record.touch()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.lineage_receiver", str(port), str(record), str(fail_rate), str(seed)],
        cwd=Path(__file__).resolve().parents[1],
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        _wait_for_port(port, receiver)
        for trial in range(trials):
            outbox = Outbox(workdir / f"outbox-{trial}", fsync=False)
            emitted = _write_events(outbox, chooser, runs=3, per_run=chooser.randint(2, 5))
            offset = record.stat().st_size
            for _kill in range(chooser.randint(1, 4)):
                if not outbox.pending():
                    break
                pid = _fork_deliverer(outbox, url)
                time.sleep(chooser.uniform(0.0, 0.25))
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                figures.kills += 1
            pid = _fork_deliverer(outbox, url)
            os.waitpid(pid, 0)
            with record.open("rb") as handle:
                handle.seek(offset)
                received = [json.loads(line) for line in handle.read().splitlines()]
            _check_trial(trial, outbox, emitted, received, figures)
    finally:
        receiver.terminate()
        receiver.wait(10)
    figures.seconds = round(time.monotonic() - started, 2)
    return figures


def _check_trial(
    trial: int, outbox: Outbox, emitted: list[tuple[str, int]], received: list[dict[str, object]], figures: FaultFigures
) -> None:
    arrivals = [(str(event["run"]["runId"]), int(event["step"])) for event in received]  # type: ignore[index,call-overload]
    first_seen = list(dict.fromkeys(arrivals))
    figures.trials += 1
    figures.events += len(emitted)
    figures.received += len(arrivals)
    figures.duplicates += len(arrivals) - len(first_seen)
    lost = set(emitted) - set(first_seen)
    figures.lost += len(lost)
    for run in {run for run, _ in emitted}:
        steps = [step for seen_run, step in first_seen if seen_run == run]
        if steps != sorted(steps):
            figures.out_of_order += 1
            figures.failures.append(f"trial {trial}: {run} arrived as {steps}")
    left = len(outbox.pending()) + len(outbox.rejected()) + len(outbox.quarantined())
    figures.left_over_entries += left
    if lost:
        figures.failures.append(f"trial {trial}: lost {sorted(lost)}")
    if left:
        figures.failures.append(f"trial {trial}: {left} entries left in the outbox")


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the lineage receiver did not start") from None
            time.sleep(0.05)
