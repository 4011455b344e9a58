"""A tiny lineage endpoint on loopback that records what it receives (``POST /api/v1/lineage``).

It is not a stand-in for Marquez's behaviour: it tests *delivery* (what arrives, in which order, how
often). It can be stopped and started again on the same port, answer a scripted series of statuses
before accepting, and hold each answer for a while.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A lineage endpoint on a fixed port that can be stopped and started again."""

    def __init__(self, status: int = 201) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.status = status
        #: statuses to answer, one per request, before answering ``status`` again
        self.script: list[int] = []
        #: seconds to hold each answer
        self.delay = 0.0
        self.received: list[dict[str, Any]] = []
        self.answered: list[int] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.status
                    if self.path != "/api/v1/lineage":
                        status = 404
                    elif status < 300:
                        receiver.received.append(json.loads(body))
                    receiver.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def run_ids(self) -> list[str]:
        with self.lock:
            return [event["run"]["runId"] for event in self.received]


def serve(port: int, record: str, fail_rate: float, seed: int) -> None:
    """Run a receiver in this process until killed: each accepted event is appended to ``record``.

    ``fail_rate`` of the requests (chosen by a seeded generator) are answered 500 without recording.
    """
    import random

    chooser = random.Random(seed)
    lock = threading.Lock()
    out = open(record, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            if len(body) < length:
                return  # the sender died mid-request: nothing was received, nobody hears an answer
            with lock:
                status = 500 if chooser.random() < fail_rate else 201
                if status == 201:
                    out.write(json.dumps(json.loads(body), separators=(",", ":")).encode() + b"\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
