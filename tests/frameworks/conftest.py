"""Fixtures for the frameworks tier: the integration tier's real lakeFS and Airflow metadata DB,
plus the Python of the frameworks environment (``make frameworks-install``) that runs the containers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.conftest import airflow_metadata_db, hook, lakefs_server, stack_env

__all__ = ["airflow_metadata_db", "frameworks_python", "hook", "lakefs_server", "stack_env"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def frameworks_python() -> str:
    """``$MLREPO_FRAMEWORKS_PYTHON``, else ``.venv-frameworks/bin/python`` of the repository."""
    # absolute (the local runner starts commands in a temporary directory), not resolved (a venv's
    # python is a symlink to the base interpreter, which would lose the venv)
    python = Path(os.environ.get("MLREPO_FRAMEWORKS_PYTHON") or ROOT / ".venv-frameworks" / "bin" / "python").absolute()
    if not python.exists():
        pytest.skip(f"no frameworks environment at {python}: run `make frameworks-install` (or `make frameworks`)")
    return str(python)
