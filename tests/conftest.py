"""Test tiers: tests/unit (no services), tests/integration (real local stack), tests/e2e (real Airflow),
tests/frameworks (the framework example containers, with their own environment: `make frameworks`).

The tier marker is applied from the folder, so ``-m unit`` / ``-m integration`` select tiers.
"""

from __future__ import annotations

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REAL_SERVICES:
        terminalreporter.section("real services used")
        for name, description in sorted(REAL_SERVICES.items()):
            terminalreporter.write_line(f"{name}: {description}")
