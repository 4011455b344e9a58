"""Starting the cluster's containerd: ready means "accepts connections", not "its socket file exists".

The stand-in below plays containerd's start-up: it loads for a while, then replaces the socket file
and listens. The socket file of a containerd that was killed is on disk before it starts, which is
how the official CI's ``ctr import`` of the pause image was refused (``connection refused``).
"""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING

from mlrepo_devstack.stack import kubernetes
from mlrepo_devstack.stack.health import unix_socket_accepts
from mlrepo_devstack.stack.processes import stop_process
from mlrepo_devstack.stack.state import StackSettings

if TYPE_CHECKING:
    from pathlib import Path

LOADS_FOR_SECONDS = 1.5

STAND_IN = """
import os, socket, sys, time
path = sys.argv[1]
time.sleep(float(sys.argv[2]))
if os.path.exists(path):
    os.unlink(path)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(16)
while True:
    connection, _ = server.accept()
    connection.close()
"""


def _stale_socket_file(path: Path) -> None:
    """What a killed process leaves: a socket file that nobody listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))
    left.close()


def test_a_socket_file_nobody_listens_on_does_not_accept(tmp_path: Path) -> None:
    path = tmp_path / "left.sock"
    _stale_socket_file(path)
    assert path.exists()
    assert not unix_socket_accepts(path)
    assert not unix_socket_accepts(tmp_path / "absent.sock")


def test_containerd_over_a_stale_socket_is_ready_only_once_it_listens(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    kubernetes.base_dir(settings).mkdir(parents=True)
    sock = kubernetes.containerd_socket(settings)
    _stale_socket_file(sock)
    script = tmp_path / "containerd_stand_in.py"
    script.write_text(STAND_IN, encoding="utf-8")
    try:
        kubernetes.start_containerd(settings, [sys.executable, str(script), str(sock), str(LOADS_FOR_SECONDS)])
        assert unix_socket_accepts(sock), "start_containerd returned before containerd listened on its socket"
        # A second start reuses the running process and keeps its socket.
        kubernetes.start_containerd(settings, [sys.executable, "-c", "raise SystemExit('must not start')"])
        assert unix_socket_accepts(sock)
    finally:
        stop_process(settings.pid_path("k8s-containerd"), "containerd stand-in")
