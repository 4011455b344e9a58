"""Test tiers: tests/unit (no services), tests/integration (real local stack), tests/e2e (real Airflow),
tests/frameworks (the framework example containers, with their own environment: `make frameworks`).

The tier marker is applied from the folder, so ``-m unit`` / ``-m integration`` select tiers.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# Airflow reads its configuration at import time: give the test session its own home so that
# nothing leaks in from (or out to) the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mlrepo-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).mkdir(parents=True, exist_ok=True)

_TIERS = ("unit", "integration", "e2e", "frameworks")

#: Real services the session talked to (name -> version and address), shown in the summary.
REAL_SERVICES: dict[str, str] = {}


#: ``MLREPO_SHARD=i/n`` keeps the test files of shard i of n (``make test`` runs shards side by side).
SHARD_ENV = "MLREPO_SHARD"
#: Seconds per test file, measured (docs/ci.md): shards are balanced on these; an unlisted file counts 30 s.
FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def shard_of_files(files: list[str], shards: int, seconds: dict[str, float]) -> dict[str, int]:
    """Longest file first onto the least loaded shard (the same answer in every process)."""
    load = [0.0] * shards
    chosen: dict[str, int] = {}
    for name in sorted(files, key=lambda f: (-seconds.get(f, 30.0), f)):
        shard = min(range(shards), key=lambda i: (load[i], i))
        chosen[name] = shard
        load[shard] += seconds.get(name, 30.0)
    return chosen


def _shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    spec = os.environ.get(SHARD_ENV)
    if not spec:
        return
    index, _, count = spec.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise pytest.UsageError(f"{SHARD_ENV}={spec!r}: expected i/n with 1 <= i <= n")
    root = Path(__file__).resolve().parents[1]
    seconds = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.exists() else {}
    file_of = [Path(str(item.fspath)).resolve().relative_to(root).as_posix() for item in items]
    chosen = shard_of_files(sorted(set(file_of)), int(count), seconds)
    keep = [item for item, name in zip(items, file_of, strict=True) if chosen[name] == int(index) - 1]
    dropped = [item for item, name in zip(items, file_of, strict=True) if chosen[name] != int(index) - 1]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


class _ShardAfterSelection:
    """Runs after ``-m``/``-k`` have deselected, so the shards split what this run selected."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        _shard(config, items)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_ShardAfterSelection(), "mlrepo-shard")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REAL_SERVICES:
        terminalreporter.section("real services used")
        for name, description in sorted(REAL_SERVICES.items()):
            terminalreporter.write_line(f"{name}: {description}")
