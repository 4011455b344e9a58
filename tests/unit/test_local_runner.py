from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from airflow_mlrepo.local_runner import TAIL_LINES, ContainerFailedError, LocalProcess, resolve_command


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return ["python", str(path)]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for an init that may never reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_output_streams_and_env_is_the_contract_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING_SECRET", "do-not-pass")
    lines: list[str] = []
    command = _script(
        tmp_path,
        """
        import os
        print("hello", os.environ["MLREPO_OUTPUT"])
        print("leak" if "AIRFLOW_CONN_SOMETHING_SECRET" in os.environ else "clean")
        """,
    )
    LocalProcess(command, {"MLREPO_OUTPUT": "lakefs://r/b/p"}, lines.append).run()
    assert lines == ["hello lakefs://r/b/p", "clean"]


def test_failure_carries_exit_code_and_last_lines(tmp_path: Path) -> None:
    command = _script(
        tmp_path,
        """
        import sys
        for i in range(50):
            print(f"line {i}")
        print("fatal: no training data", file=sys.stderr)
        sys.exit(7)
        """,
    )
    with pytest.raises(ContainerFailedError) as err:
        LocalProcess(command, {}, lambda _: None).run()
    assert err.value.exit_code == 7
    assert len(err.value.last_lines) == TAIL_LINES
    assert err.value.last_lines[-1] == "fatal: no training data"
    assert "line 49" in str(err.value)
    assert "line 10" not in str(err.value)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    command = _script(
        tmp_path,
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    started = time.monotonic()
    with pytest.raises(ContainerFailedError, match="timed out"):
        LocalProcess(command, {}, lambda _: None, timeout=2).run()
    assert time.monotonic() - started < 20
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert not _running(grandchild)


def test_kill_from_another_thread_stops_it(tmp_path: Path) -> None:
    command = _script(tmp_path, "import time; print('up', flush=True); time.sleep(60)")
    process = LocalProcess(command, {}, lambda _: None)
    killer = threading.Timer(1.0, process.kill)
    killer.start()
    started = time.monotonic()
    with pytest.raises(ContainerFailedError, match="exited with code -15"):
        process.run()
    assert time.monotonic() - started < 15


def test_python_runs_with_the_workers_interpreter() -> None:
    assert resolve_command(["python", "-m", "x"])[0] == sys.executable
    assert resolve_command(["/bin/echo", "x"]) == ["/bin/echo", "x"]
    with pytest.raises(Exception, match="no command"):
        resolve_command([])
