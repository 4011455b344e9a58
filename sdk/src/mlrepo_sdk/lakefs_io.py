"""A tiny lakeFS client on urllib3: list, read, upload, commit.

Just what the example containers need, so that the image carries no Airflow. It speaks lakeFS's
REST API (``/api/v1``) directly instead of through the generated ``lakefs_sdk``, whose import
loads every API module and model (about 1-2 s, paid by every container start: the fixed cost of
each datum task, docs/benchmarks.md). The requests are those ``lakefs_sdk`` sends: path parameters
quoted with no safe characters, basic auth, urllib3's default retries, the upload as the
multipart ``content`` part. lakeFS and transport errors become :class:`LakeFSError`, whose message
names the operation, the ``lakefs://`` location and the server's own explanation.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import HTTPError as Urllib3HTTPError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from mlrepo_sdk.contract import LakeFSAccess, LakeFSLocation

#: objects per list page (lakeFS's maximum).
PAGE_SIZE = 1000
#: seconds to connect, and to wait for each response.
REQUEST_TIMEOUT: tuple[float, float] = (10.0, 120.0)


class LakeFSError(Exception):
    """A lakeFS call failed (HTTP error or lakeFS unreachable)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ObjectInfo:
    """One object listed at a ref."""

    path: str
    size_bytes: int
    checksum: str


class LakeFS:
    """The calls the example containers make, against one lakeFS server."""

    def __init__(self, access: LakeFSAccess) -> None:
        self.endpoint = access.endpoint
        self._api = access.api_url.rstrip("/")
        self._headers = urllib3.make_headers(basic_auth=f"{access.access_key_id}:{access.secret_access_key}")
        connect, read = REQUEST_TIMEOUT
        self._pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=connect, read=read))

    def list_objects(self, repository: str, ref: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` at ``ref`` (recursively), in path order."""
        after = ""
        while True:
            query = (
                {"amount": str(PAGE_SIZE)}
                | ({"prefix": prefix} if prefix else {})
                | ({"after": after} if after else {})
            )
            with self._errors("list objects under", repository, ref, prefix):
                page = json.loads(self._call("GET", f"{self._ref(repository, ref)}/objects/ls", query))
            for stats in page["results"]:
                if stats.get("path_type") == "object":
                    yield ObjectInfo(
                        path=stats["path"], size_bytes=int(stats.get("size_bytes") or 0), checksum=stats["checksum"]
                    )
            if not page["pagination"]["has_more"]:
                return
            after = page["pagination"]["next_offset"]

    def read(self, repository: str, ref: str, path: str) -> bytes:
        """The whole content of one (small) object."""
        with self._errors("read", repository, ref, path):
            return self._call("GET", f"{self._ref(repository, ref)}/objects", {"path": path})

    def read_all(self, location: LakeFSLocation, *, suffix: str) -> list[tuple[str, bytes]]:
        """``(path, content)`` of every object under ``location`` whose name ends with ``suffix``
        (case-insensitive), sorted by path."""
        found = [
            info.path
            for info in self.list_objects(location.repository, location.ref, location.path)
            if location.contains(info.path) and info.path.lower().endswith(suffix.lower())
        ]
        return [(path, self.read(location.repository, location.ref, path)) for path in sorted(found)]

    def upload(self, repository: str, branch: str, path: str, data: bytes, *, allow_empty: bool = False) -> None:
        """Upload ``data`` to ``path`` on ``branch``: staged, not committed.

        Empty data is refused (a bug in the caller, usually) unless ``allow_empty``: a model
        directory may hold zero-byte marker files such as Spark's ``_SUCCESS``.
        """
        if not data and not allow_empty:
            raise ValueError(f"refusing to upload an empty object to lakefs://{repository}/{branch}/{path}")
        with self._errors("upload", repository, branch, path):
            name = path.rsplit("/", 1)[-1] or "content"
            self._call(
                "POST",
                f"{self._branch(repository, branch)}/objects",
                {"path": path},
                fields={"content": (name, bytes(data), "application/octet-stream")},
            )

    def commit(self, repository: str, branch: str, message: str, metadata: Mapping[str, str] | None = None) -> str:
        """Commit the staged changes of ``branch``; return the new commit id."""
        body = json.dumps({"message": message, "metadata": dict(metadata or {})}).encode()
        with self._errors("commit", repository, branch, ""):
            commit = json.loads(self._call("POST", f"{self._branch(repository, branch)}/commits", body=body))
        return str(commit["id"])

    def _ref(self, repository: str, ref: str) -> str:
        return f"{self._api}/repositories/{quote(repository, safe='')}/refs/{quote(ref, safe='')}"

    def _branch(self, repository: str, branch: str) -> str:
        return f"{self._api}/repositories/{quote(repository, safe='')}/branches/{quote(branch, safe='')}"

    def _call(
        self,
        method: str,
        url: str,
        query: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> bytes:
        """One request; the response body, or :class:`_HTTPStatusError` for an HTTP error status."""
        if query:
            url = f"{url}?{urlencode(query)}"
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if fields is not None:
            response = self._pool.request_encode_body(method, url, fields=fields, headers=headers)
        else:
            response = self._pool.urlopen(method, url, body=body, headers=headers)
        if response.status >= 400:
            raise _HTTPStatusError(response.status, response.reason, response.data)
        return bytes(response.data)

    @contextmanager
    def _errors(self, action: str, repository: str, ref: str, path: str) -> Iterator[None]:
        where = f"lakefs://{repository}/{ref}/{path}"
        try:
            yield
        except _HTTPStatusError as exc:
            reason = f"HTTP {exc.status} {exc.reason or ''}".strip()
            raise LakeFSError(
                f"lakeFS could not {action} {where}: {reason}: {_server_message(exc.body)}", status=exc.status
            ) from None
        except Urllib3HTTPError as exc:
            raise LakeFSError(f"cannot reach lakeFS at {self.endpoint} to {action} {where}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:  # a 2xx answer that is not what lakeFS sends
            raise LakeFSError(f"lakeFS sent an unexpected answer to {action} {where}: {exc!r}") from exc


class _HTTPStatusError(Exception):
    def __init__(self, status: int, reason: str | None, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.body = body


def _server_message(body: Any) -> str:
    """lakeFS's ``{"message": ...}`` error body, or the raw body."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    if not body:
        return "(no message)"
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:500]
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    return str(body)[:500]
