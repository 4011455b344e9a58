"""Detached start, pid files and stop (SIGTERM, then SIGKILL) of stack processes (no services)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest
from mlrepo_devstack.stack.processes import is_alive, kill_process, read_pid_file, start_detached, stop_process

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def _start(tmp_path: Path, script: str) -> int:
    return start_detached(
        ["bash", "-c", script],
        env=dict(os.environ),
        log_path=tmp_path / "logs" / "service.log",
        pid_path=tmp_path / "run" / "service.pid",
        cwd=tmp_path,
    )


def test_detached_process_gets_its_own_session_and_pid_file(tmp_path: Path) -> None:
    pid = _start(tmp_path, "echo started; exec sleep 60")
    try:
        assert read_pid_file(tmp_path / "run" / "service.pid") == pid
        assert os.getsid(pid) == pid
        deadline = time.monotonic() + 5
        while "started" not in (tmp_path / "logs" / "service.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "started" in (tmp_path / "logs" / "service.log").read_text()
    finally:
        stop_process(tmp_path / "run" / "service.pid", "service", timeout=5)


def test_stop_sends_sigterm_and_removes_the_pid_file(tmp_path: Path) -> None:
    pid = _start(tmp_path, "exec sleep 60")
    assert stop_process(tmp_path / "run" / "service.pid", "service", timeout=5)
    assert not is_alive(pid)
    assert not (tmp_path / "run" / "service.pid").exists()
    assert not stop_process(tmp_path / "run" / "service.pid", "service")


def test_stop_falls_back_to_sigkill(tmp_path: Path) -> None:
    pid = _start(tmp_path, "trap '' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)  # let bash install the trap
    started = time.monotonic()
    assert stop_process(tmp_path / "run" / "service.pid", "service", timeout=1)
    assert not is_alive(pid)
    assert time.monotonic() - started < 10


def test_kill_sigkills_the_whole_session_at_once(tmp_path: Path) -> None:
    # A service that would shut down cleanly on SIGTERM, with a child: a crash gives it no chance.
    pid = _start(tmp_path, "trap 'echo clean >> clean.txt; exit 0' TERM; sleep 60 & echo $! > child.pid; wait")
    time.sleep(0.3)
    child = int((tmp_path / "child.pid").read_text())
    assert kill_process(tmp_path / "run" / "service.pid", "service")
    assert not is_alive(pid)
    deadline = time.monotonic() + 5
    while is_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(child)
    assert not (tmp_path / "clean.txt").exists()
    assert not (tmp_path / "run" / "service.pid").exists()
    assert not kill_process(tmp_path / "run" / "service.pid", "service")


def test_a_recycled_pid_is_not_taken_for_the_service(tmp_path: Path) -> None:
    pid_path = tmp_path / "run" / "service.pid"
    pid_path.parent.mkdir(parents=True)
    pid_path.write_text(f"{os.getpid()} 1\n", encoding="utf-8")  # our pid, wrong start time
    assert read_pid_file(pid_path) is None
