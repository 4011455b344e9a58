"""Objects of :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook`: stat, list, delete, and streamed I/O.

Uploads and downloads bypass the SDK's models and stream through the SDK's own urllib3 pool, in
chunks of :data:`STREAM_CHUNK_BYTES`: memory use is bounded by the chunk size, not the object size.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from lakefs_sdk.models.object_stats import ObjectStats
from lakefs_sdk.models.path_list import PathList

from airflow_mlrepo.exceptions import LakeFSBadInputError, LakeFSHTTPAnswerError, LakeFSNotFoundError
from airflow_mlrepo.hooks.lakefs.base import LOG_PAGE_SIZE, LakeFSHookBase
from airflow_mlrepo.hooks.lakefs.connection import CLIENT_HEADER, client_version
from airflow_mlrepo.hooks.lakefs.refs import validate_commit_metadata
from airflow_mlrepo.locations import validate_branch, validate_path, validate_ref, validate_repository

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

#: Chunk size for streaming object reads and writes. Memory use is bounded by this, not object size.
STREAM_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LakeFSObjectStat:
    """Facts about one object at one ref."""

    path: str
    size_bytes: int
    checksum: str
    mtime: int
    content_type: str | None
    metadata: Mapping[str, str]
    physical_address: str

    @classmethod
    def from_sdk(cls, stats: Any) -> LakeFSObjectStat:
        return cls(
            path=stats.path,
            size_bytes=int(stats.size_bytes or 0),
            checksum=stats.checksum,
            mtime=int(stats.mtime),
            content_type=stats.content_type,
            metadata=dict(stats.metadata or {}),
            physical_address=stats.physical_address,
        )


class LakeFSObjectsMixin(LakeFSHookBase):
    """Object I/O of :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook`."""

    def stat_object(self, repository: str, ref: str, path: str) -> LakeFSObjectStat:
        validate_repository(repository)
        validate_ref(ref)
        validate_path(path)
        stats = self._call(
            "stat object",
            self.client.objects_api.stat_object,
            repository,
            ref,
            path,
            user_metadata=True,
            repository=repository,
            ref=ref,
            path=path,
        )
        return LakeFSObjectStat.from_sdk(stats)

    def object_exists(self, repository: str, ref: str, path: str) -> bool:
        try:
            self.stat_object(repository, ref, path)
        except LakeFSNotFoundError as exc:
            if exc.names_missing_repository or "ref" in (exc.server_message or "").lower():
                raise
            return False
        return True

    def list_objects(self, repository: str, ref: str, prefix: str = "") -> Iterator[LakeFSObjectStat]:
        """Every object under ``prefix`` at ``ref`` (recursive), in path order."""
        validate_repository(repository)
        validate_ref(ref)
        validate_path(prefix)
        for stats in self._paged(
            "list objects",
            self.client.objects_api.list_objects,
            repository,
            ref,
            prefix=prefix or None,
            repository=repository,
            ref=ref,
            path=prefix,
        ):
            yield LakeFSObjectStat.from_sdk(stats)

    def delete_prefix(self, repository: str, branch: str, prefix: str) -> int:
        """Stage the deletion of every object under ``prefix`` on ``branch``; return how many."""
        validate_repository(repository)
        validate_branch(branch)
        validate_path(prefix)
        paths = [obj.path for obj in self.list_objects(repository, branch, prefix)]
        for start in range(0, len(paths), LOG_PAGE_SIZE):
            self._call(
                "delete objects",
                self.client.objects_api.delete_objects,
                repository,
                branch,
                PathList.from_dict({"paths": paths[start : start + LOG_PAGE_SIZE]}),
                repository=repository,
                ref=branch,
                path=prefix,
            )
        return len(paths)

    def upload_object(
        self,
        repository: str,
        branch: str,
        path: str,
        source: IO[bytes] | str | os.PathLike[str] | bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> LakeFSObjectStat:
        """Upload ``source`` (bytes, a binary file object or a file path) to ``branch``/``path``.

        Streams in :data:`STREAM_CHUNK_BYTES` chunks, so memory stays constant whatever the size.
        """
        validate_repository(repository)
        validate_branch(branch)
        validate_path(path)
        if not path:
            raise LakeFSBadInputError(
                f"Cannot upload to an empty path on branch '{branch}' of repository '{repository}'",
                repository=repository,
                ref=branch,
            )
        checked = validate_commit_metadata(metadata)
        headers = {
            "Accept": "application/json",
            "Content-Type": content_type or "application/octet-stream",
        }
        for key, value in checked.items():
            headers[f"X-Lakefs-Meta-{key}"] = value
        if isinstance(source, bytes | bytearray):
            body: Any = bytes(source)
            headers["Content-Length"] = str(len(body))
            return self._raw_upload(repository, branch, path, headers, body)
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as handle:
                headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
                return self._raw_upload(repository, branch, path, headers, _chunks(handle))
        size = _remaining_size(source)
        if size is not None:
            headers["Content-Length"] = str(size)
            return self._raw_upload(repository, branch, path, headers, _chunks(source))
        headers["Transfer-Encoding"] = "chunked"
        return self._raw_upload(repository, branch, path, headers, _chunks(source), chunked=True)

    def _raw_upload(
        self,
        repository: str,
        branch: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        *,
        chunked: bool = False,
    ) -> LakeFSObjectStat:
        url, resource_path = self._object_url(repository, "branches", branch, path)
        api_client = self.client.objects_api.api_client
        api_client.update_params_for_auth(headers, None, ["basic_auth"], resource_path, "POST", None)
        headers[CLIENT_HEADER] = client_version()
        with self._translated_errors("upload object", repository=repository, ref=branch, path=path):
            self.api_calls += 1
            response = api_client.rest_client.pool_manager.request(
                "POST",
                url,
                headers=headers,
                body=body,
                chunked=chunked,
                timeout=self.settings.request_timeout,
                preload_content=True,
            )
            if response.status >= 400:
                raise LakeFSHTTPAnswerError(response.status, response.data)
            return LakeFSObjectStat.from_sdk(ObjectStats.from_dict(json.loads(response.data)))

    def read_object(self, repository: str, ref: str, path: str) -> Iterator[bytes]:
        """Stream an object's bytes in chunks of at most :data:`STREAM_CHUNK_BYTES`."""
        validate_repository(repository)
        validate_ref(ref)
        validate_path(path)
        url, resource_path = self._object_url(repository, "refs", ref, path)
        api_client = self.client.objects_api.api_client
        headers: dict[str, str] = {CLIENT_HEADER: client_version()}
        api_client.update_params_for_auth(headers, None, ["basic_auth"], resource_path, "GET", None)
        with self._translated_errors("read object", repository=repository, ref=ref, path=path):
            self.api_calls += 1
            response = api_client.rest_client.pool_manager.request(
                "GET", url, headers=headers, preload_content=False, timeout=self.settings.request_timeout
            )
            try:
                if response.status >= 400:
                    raise LakeFSHTTPAnswerError(response.status, response.read())
                yield from response.stream(STREAM_CHUNK_BYTES)
            finally:
                response.release_conn()

    def download_object(
        self, repository: str, ref: str, path: str, destination: IO[bytes] | str | os.PathLike[str]
    ) -> int:
        """Write an object to a binary file object or a file path; return the byte count."""
        written = 0
        if isinstance(destination, str | os.PathLike):
            tmp = f"{os.fspath(destination)}.part"
            try:
                with open(tmp, "wb") as handle:
                    for chunk in self.read_object(repository, ref, path):
                        handle.write(chunk)
                        written += len(chunk)
                os.replace(tmp, destination)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return written
        for chunk in self.read_object(repository, ref, path):
            destination.write(chunk)
            written += len(chunk)
        return written

    def read_object_bytes(self, repository: str, ref: str, path: str) -> bytes:
        """A small object's whole content (use :meth:`read_object` for large ones)."""
        return b"".join(self.read_object(repository, ref, path))

    def _object_url(self, repository: str, kind: str, ref: str, path: str) -> tuple[str, str]:
        resource_path = (
            f"/repositories/{urllib.parse.quote(repository, safe='')}/{kind}/{urllib.parse.quote(ref, safe='')}/objects"
        )
        query = urllib.parse.urlencode({"path": path})
        return f"{self.settings.api_url}{resource_path}?{query}", resource_path


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = handle.read(STREAM_CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def _remaining_size(handle: IO[bytes]) -> int | None:
    try:
        if handle.seekable():
            position = handle.tell()
            end = handle.seek(0, os.SEEK_END)
            handle.seek(position)
            return end - position
    except (OSError, AttributeError, ValueError):
        return None
    return None


__all__ = ["STREAM_CHUNK_BYTES", "LakeFSObjectStat", "LakeFSObjectsMixin"]
