"""A local HTTP server that answers like Marquez 0.51.1, from recorded answers.

Unit tests point code that talks to Marquez (the stack's external-Marquez probe, the lineage walk of
``mlrepo lineage show``) at it. The answers are JSON documents shaped as Marquez 0.51.1 really answers
(``../shared/marquez-api/openapi.yml`` and what a real Marquez returned, e.g. ``inputDatasetVersions``
entries are ``{"datasetVersionId": {"namespace", "name", "version"}, "facets": {}}``); a route that
is not recorded answers 404 like Marquez does for an unknown node. Every request is kept (method,
path with query, headers) so tests can check what was asked and with which credentials.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class RecordedMarquez:
    """``answers``: ``"GET /api/v1/..."`` (path with its query, as sent) -> (status, JSON body)."""

    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    required_bearer: str | None = None

    def __post_init__(self) -> None:
        recorded = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded.requests.append(
                    RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                if (
                    recorded.required_bearer
                    and self.headers.get("Authorization") != f"Bearer {recorded.required_bearer}"
                ):
                    status, document = 401, {"code": 401, "message": "missing or wrong API key"}
                else:
                    status, document = recorded.answers.get(
                        f"{self.command} {self.path}", (404, {"code": 404, "message": f"{self.path} not found"})
                    )
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


#: ``GET /api/v1/namespaces?limit=1`` of a fresh Marquez 0.51.1 (NamespaceList in openapi.yml).
NAMESPACES_ANSWER: dict[str, Any] = {
    "namespaces": [
        {
            "name": "default",
            "createdAt": "2026-12-01T08:12:03.512Z",
            "updatedAt": "2026-12-01T08:12:03.512Z",
            "ownerName": "anonymous",
            "description": (
                "The default global namespace for dataset, job, and run metadata "
                "not belonging to a user-specified namespace."
            ),
            "isHidden": False,
        }
    ]
}
