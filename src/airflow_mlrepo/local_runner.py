"""The local runner: run a pod operator's container command as a local process.

Same command, same environment contract, no Kubernetes: the embedded default for laptops, the
demo and CI. The process gets its own process group (killed whole on timeout, task kill or any
error) and, on Linux, dies with the task process if that is SIGKILLed. Its output streams into
the task log line by line; the last lines are kept for the error message.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import MlRepoError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

#: Environment variables a local process inherits from the worker (nothing secret).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT")
_KILL_GRACE_SECONDS = 10.0
TAIL_LINES = 20


class ContainerFailedError(MlRepoError):
    """The container (pod or local process) exited unsuccessfully. Carries its last log lines."""

    def __init__(self, message: str, *, exit_code: int | None, last_lines: Sequence[str]) -> None:
        tail = "\n".join(last_lines)
        super().__init__(f"{message}\n--- last {len(last_lines)} lines of its output ---\n{tail}" if tail else message)
        self.exit_code = exit_code
        self.last_lines = list(last_lines)


@dataclass
class LocalProcess:
    """One local run of a container command."""

    command: Sequence[str]
    env: Mapping[str, str]
    log_line: Callable[[str], None]
    cwd: str | None = None
    timeout: float | None = None
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    _process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        """Run to completion; raise :class:`ContainerFailedError` on a non-zero exit or timeout."""
        command = resolve_command(self.command)
        env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        env.update(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._process = subprocess.Popen(
            command,
            env=env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        reader = threading.Thread(target=self._pump, daemon=True)
        reader.start()
        try:
            exit_code = self._process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            reader.join(timeout=5)
            raise ContainerFailedError(
                f"Container command {list(self.command)} timed out after {self.timeout:.0f} s and was killed",
                exit_code=None,
                last_lines=list(self.tail),
            ) from None
        except BaseException:
            # AirflowTaskTimeout, KeyboardInterrupt, SIGTERM from the supervisor: never leave it running.
            self.kill()
            raise
        reader.join(timeout=5)
        if exit_code != 0:
            raise ContainerFailedError(
                f"Container command {list(self.command)} exited with code {exit_code}",
                exit_code=exit_code,
                last_lines=list(self.tail),
            )

    def _pump(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.tail.append(line)
            self.log_line(line)

    def kill(self) -> None:
        """Terminate the whole process group: SIGTERM, then SIGKILL after a grace period."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _KILL_GRACE_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            process.wait()


def resolve_command(command: Sequence[str]) -> list[str]:
    """``python``/``python3`` run with the worker's own interpreter, as an image's Python would."""
    if not command:
        raise MlRepoError("The container has no command to run locally: set cmds (and arguments)")
    resolved = list(command)
    if resolved[0] in ("python", "python3"):
        resolved[0] = sys.executable
    return resolved


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
