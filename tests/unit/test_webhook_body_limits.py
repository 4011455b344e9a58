"""The webhook receiver under uvicorn, fed 100 MB bodies: its memory stays bounded and each is refused.

The receiver is the real FastAPI app of :func:`airflow_mlrepo.webhooks.lakefs.create_app` served by
uvicorn in its own process (the api-server serves it the same way); only its secret and the
metadata DB recorder are given. The client is a raw socket that streams the body while reading the
answer, so a server that refuses early can do so, and one that buffers the body shows in its RSS.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]
import pytest

from airflow_mlrepo.webhooks.lakefs import EVENTS_ROUTE, MAX_BODY_BYTES, SECRET_HEADER

SECRET = "body-limit-test-secret"
BODY_BYTES = 100 * 1000 * 1000
CHUNK = b"x" * (1024 * 1024)
#: How much the server's RSS may grow while a 100 MB request arrives (it holds at most 1 MiB of it).
RSS_GROWTH_LIMIT = 40 * 1024 * 1024

SERVER = f"""
import sys, uvicorn
from airflow_mlrepo.webhooks.lakefs import create_app

class NoAssets:
    def scheduled_assets(self, repository):
        return []
    def record(self, asset, facts):
        raise AssertionError("nothing is recorded in this test")

app = create_app(recorder=NoAssets(), secret_provider=lambda: {SECRET!r})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    process: psutil.Process
    samples: list[int] = field(default_factory=list)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the webhook test server did not start") from None
                time.sleep(0.1)
        yield Server(port, psutil.Process(child.pid))
    finally:
        child.terminate()
        child.wait(10)


def _request(server: Server, *, secret: str | None, chunked: bool) -> tuple[int, int, int]:
    """POST a 100 MB body; returns (HTTP status, bytes of body sent, peak RSS growth of the server)."""
    headers = [f"POST /{EVENTS_ROUTE.lstrip('/')} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    headers.append("Content-Type: application/json")
    if secret is not None:
        headers.append(f"{SECRET_HEADER}: {secret}")
    headers.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sent = [0]

    def send_body() -> None:
        try:
            sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
            while sent[0] < BODY_BYTES:
                piece = CHUNK[: BODY_BYTES - sent[0]]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent[0] += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed the connection: expected when it refuses early

    baseline = server.rss()
    peak = baseline
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    answer = b""
    sock.settimeout(0.02)
    deadline = time.monotonic() + 120
    while b"\r\n" not in answer and time.monotonic() < deadline:
        peak = max(peak, server.rss())
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        answer += data
    sender.join(120)
    peak = max(peak, server.rss())
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent[0], peak - baseline


@pytest.mark.parametrize(
    ("secret", "chunked", "status"),
    [
        (None, False, 401),
        ("wrong-secret", True, 401),
        (SECRET, False, 413),
        (SECRET, True, 413),
    ],
    ids=["unauthenticated", "wrong-secret-chunked", "authenticated", "authenticated-chunked"],
)
def test_a_100_mb_body_is_refused_with_bounded_memory(
    server: Server, secret: str | None, chunked: bool, status: int
) -> None:
    answered, sent, growth = _request(server, secret=secret, chunked=chunked)
    print(f"status={answered} sent={sent / 1e6:.1f} MB rss_growth={growth / 2**20:.1f} MiB")
    assert answered == status
    assert growth < RSS_GROWTH_LIMIT, f"the server's RSS grew by {growth / 2**20:.0f} MiB for one request"
    assert server.process.is_running()


def test_a_small_event_still_reaches_the_handler(server: Server) -> None:
    body = b'{"event_type": "post-commit", "repository_id": "data", "branch_id": "main", "commit_id": "%s"}' % (
        b"c" * 64
    )
    assert len(body) < MAX_BODY_BYTES
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        request = (
            f"POST {EVENTS_ROUTE} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]  # no asset of repository 'data': the body was read
