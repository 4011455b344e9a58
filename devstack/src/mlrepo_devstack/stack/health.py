"""Small HTTP and TCP probes used to decide whether a service is up."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def http_request(
    url: str,
    *,
    method: str = "GET",
    basic_auth: tuple[str, str] | None = None,
    json_body: Any = None,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> HttpAnswer | None:
    """One HTTP request; the answer (any status), or None when nothing answered.

    Send either ``json_body`` (serialised as JSON) or raw ``body`` with its ``content_type``.
    """
    data = body
    if json_body is not None:
        data = json.dumps(json_body).encode("utf-8")
        content_type = "application/json"
    request = urllib.request.Request(url, data=data, method=method)
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if basic_auth is not None:
        token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(status=response.status, body=response.read())
    except urllib.error.HTTPError as err:
        return HttpAnswer(status=err.code, body=err.read())
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_socket_accepts(path: str | os.PathLike[str], timeout: float = 0.5) -> bool:
    """True if a process listens on the Unix socket at ``path``.

    A socket *file* outlives the process that made it (containerd leaves its socket behind when it
    is killed), so a file's existence says nothing: only a connection that is accepted does.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.5,
    keep_waiting: Callable[[], bool] | None = None,
) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; stop early if ``keep_waiting`` is false."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if keep_waiting is not None and not keep_waiting():
            return check()
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
