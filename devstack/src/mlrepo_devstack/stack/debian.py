"""Debian specifics: installing packages with apt, running commands as root or as ``postgres``.

As root, commands run directly (``runuser`` switches to ``postgres``). Otherwise they go through
``sudo -n``, which fails fast instead of prompting when no password-less sudo is configured.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import StackError
from mlrepo_devstack.stack.processes import last_lines, run_logged

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

log = logging.getLogger(__name__)

APT_TIMEOUT = 1200.0


def is_root() -> bool:
    return os.geteuid() == 0


def as_root(argv: Sequence[str]) -> list[str]:
    return list(argv) if is_root() else ["sudo", "-n", "--", *argv]


def as_postgres_user(argv: Sequence[str]) -> list[str]:
    if is_root():
        return ["runuser", "-u", "postgres", "--", *argv]
    return ["sudo", "-n", "-u", "postgres", "--", *argv]


def install_packages(packages: Sequence[str], *, log_path: Path) -> None:
    """``apt-get update`` then ``apt-get install -y <packages>``; raise StackError on failure."""
    if shutil.which("apt-get") is None:
        raise StackError(f"{', '.join(packages)} missing and apt-get is not available: install them yourself")
    log.info("installing Debian packages %s with apt-get (log: %s)", " ".join(packages), log_path)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        completed = run_logged(as_root(argv), log_path=log_path, env=env, timeout=APT_TIMEOUT)
        if completed.returncode != 0:
            raise StackError(
                f"`{' '.join(argv)}` failed (exit {completed.returncode}):\n"
                f"{last_lines(completed.stderr or completed.stdout)}"
            )
