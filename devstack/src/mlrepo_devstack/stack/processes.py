"""Start detached service processes, remember them in pid files, stop them cleanly.

A service is started in its own session (``start_new_session=True``) with stdin closed and
stdout/stderr appended to a log file, so it outlives the ``mlrepo`` command that started it.
The pid file records the pid *and* the process start time (``/proc/<pid>/stat`` field 22), so
a recycled pid is never mistaken for our service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import StackError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 30.0


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None if there is no such pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ..." -- comm may contain spaces and parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    fields = _proc_stat_fields(pid)
    # After "pid (comm)" the state is field 3; starttime is field 22, i.e. index 19 here.
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie child of ours is reaped)."""
    fields = _proc_stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def write_pid_file(pid_path: Path, pid: int) -> None:
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    ticks = process_start_ticks(pid)
    pid_path.write_text(f"{pid} {ticks}\n" if ticks is not None else f"{pid}\n", encoding="utf-8")


def read_pid_file(pid_path: Path) -> int | None:
    """The pid recorded in ``pid_path`` if that very process is still alive, else None."""
    try:
        parts = pid_path.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    if not parts or not parts[0].isdigit():
        return None
    pid = int(parts[0])
    if not is_alive(pid):
        return None
    if len(parts) > 1 and parts[1].isdigit() and process_start_ticks(pid) != int(parts[1]):
        return None  # the pid was recycled by an unrelated process
    return pid


def start_detached(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    pid_path: Path,
    cwd: Path,
) -> int:
    """Start ``argv`` in a new session, output appended to ``log_path``; record its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {argv[0]}\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    write_pid_file(pid_path, process.pid)
    return process.pid


def stop_process(pid_path: Path, name: str, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """SIGTERM the process (and its session's group), wait, then SIGKILL. True if one was stopped."""
    pid = read_pid_file(pid_path)
    if pid is None:
        pid_path.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, timeout):
        log.warning("%s (pid %d) did not exit %.0fs after SIGTERM; sending SIGKILL", name, pid, timeout)
        _signal_group(pid, signal.SIGKILL)
        if not _wait_for_exit(pid, 10.0):
            raise StackError(f"{name} (pid {pid}) survived SIGKILL")
    pid_path.unlink(missing_ok=True)
    return True


def kill_process(pid_path: Path, name: str) -> bool:
    """SIGKILL the process and its session's group at once (a crash, not a stop). True if one was killed."""
    pid = read_pid_file(pid_path)
    if pid is None:
        pid_path.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGKILL)
    if not _wait_for_exit(pid, 10.0):
        raise StackError(f"{name} (pid {pid}) survived SIGKILL")
    pid_path.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (our services are session leaders), else the pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.2)
    return not is_alive(pid)


def run_logged(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, appending its output to ``log_path``; return it (no raise)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log_file:
        log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} running {' '.join(argv[:4])}\n")
    try:
        completed = subprocess.run(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise StackError(f"{argv[0]} did not finish within {timeout:.0f}s; see {log_path}") from err
    with log_path.open("a", encoding="utf-8") as log_file:
        log_file.write(completed.stdout)
        log_file.write(completed.stderr)
        log_file.write(f"=== exit status {completed.returncode}\n")
    return completed


def last_lines(text: str, count: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


def log_tail(log_path: Path, count: int = 15) -> str:
    try:
        return last_lines(log_path.read_text(encoding="utf-8", errors="replace"), count)
    except FileNotFoundError:
        return ""
