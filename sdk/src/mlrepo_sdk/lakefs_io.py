"""A tiny lakeFS client on the plain lakeFS SDK (``lakefs_sdk``): list, read, upload, commit.

Just what the example containers need, so that the image carries no Airflow. lakeFS and
transport errors become :class:`LakeFSError`, whose message names the operation, the
``lakefs://`` location and the server's own explanation.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakefs_sdk.client import LakeFSClient
from lakefs_sdk.configuration import Configuration
from lakefs_sdk.exceptions import ApiException
from lakefs_sdk.models.commit_creation import CommitCreation
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
        configuration = Configuration(
            host=access.api_url, username=access.access_key_id, password=access.secret_access_key
        )
        self._client = LakeFSClient(configuration)  # type: ignore[no-untyped-call]

    def list_objects(self, repository: str, ref: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` at ``ref`` (recursively), in path order."""
        after = ""
        while True:
            with self._errors("list objects under", repository, ref, prefix):
                page = self._client.objects_api.list_objects(
                    repository,
                    ref,
                    prefix=prefix or None,
                    after=after or None,
                    amount=PAGE_SIZE,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            for stats in page.results:
                if stats.path_type == "object":
                    yield ObjectInfo(path=stats.path, size_bytes=int(stats.size_bytes or 0), checksum=stats.checksum)
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def read(self, repository: str, ref: str, path: str) -> bytes:
        """The whole content of one (small) object."""
        with self._errors("read", repository, ref, path):
            return bytes(self._client.objects_api.get_object(repository, ref, path, _request_timeout=REQUEST_TIMEOUT))

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
            # LakeFSClient's API client sends bytes as the multipart "content" part (a str would
            # be taken for a local file name).
            self._client.objects_api.upload_object(
                repository, branch, path, content=bytes(data), _request_timeout=REQUEST_TIMEOUT
            )

    def commit(self, repository: str, branch: str, message: str, metadata: Mapping[str, str] | None = None) -> str:
        """Commit the staged changes of ``branch``; return the new commit id."""
        creation = CommitCreation.from_dict({"message": message, "metadata": dict(metadata or {})})
        with self._errors("commit", repository, branch, ""):
            commit = self._client.commits_api.commit(repository, branch, creation, _request_timeout=REQUEST_TIMEOUT)
        return str(commit.id)

    @contextmanager
    def _errors(self, action: str, repository: str, ref: str, path: str) -> Iterator[None]:
        where = f"lakefs://{repository}/{ref}/{path}"
        try:
            yield
        except ApiException as exc:
            status = int(exc.status) if exc.status else None
            reason = f"HTTP {exc.status} {exc.reason or ''}".strip()
            raise LakeFSError(
                f"lakeFS could not {action} {where}: {reason}: {_server_message(exc.body)}", status=status
            ) from None
        except Urllib3HTTPError as exc:
            raise LakeFSError(f"cannot reach lakeFS at {self.endpoint} to {action} {where}: {exc}") from exc


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
