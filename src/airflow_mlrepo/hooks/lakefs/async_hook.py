"""``LakeFSAsyncHook``: lakeFS from a triggerer's event loop.

A triggerer runs thousands of triggers on one event loop, so what they ask most often, a branch's
head, is read with ``httpx`` without blocking: one ``AsyncClient`` per event loop and lakeFS
endpoint, shared by every trigger of the process (one connection pool, no lakeFS SDK client per
trigger), and concurrent reads of the same branch coalesced into one request.

The rarer, multi-request question "which commits are new" is answered by
:mod:`airflow_mlrepo.changes` on the synchronous :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook`
(the generated ``lakefs_sdk``, which is urllib3-based and synchronous only) in a worker thread, one
hook per connection shared by the process: one implementation of "what changed", not an async twin.

:class:`LakeFSBranchPoller` binds the hook to one watched branch and filter for the triggers.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any

import httpx
from airflow.sdk import BaseHook

from airflow_mlrepo import changes
from airflow_mlrepo.exceptions import (
    CommitNotAncestorError,
    LakeFSHTTPAnswerError,
    LakeFSUnavailableError,
    translate_lakefs_error,
)
from airflow_mlrepo.hooks.lakefs.connection import CLIENT_HEADER, LakeFSConnectionSettings, client_version
from airflow_mlrepo.hooks.lakefs.hook import LakeFSHook
from airflow_mlrepo.locations import validate_branch, validate_ref, validate_repository

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from airflow_mlrepo.hooks.lakefs.refs import LakeFSCommit

_ClientKey = tuple[str, bool, float]
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_ClientKey, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _shared_client(settings: LakeFSConnectionSettings) -> httpx.AsyncClient:
    """The ``AsyncClient`` of this event loop for this lakeFS endpoint (one pool for all triggers)."""
    loop = asyncio.get_running_loop()
    per_loop = _CLIENTS.setdefault(loop, {})
    key = (settings.endpoint, settings.verify_ssl, settings.request_timeout)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            verify=settings.verify_ssl,
            timeout=settings.request_timeout,
            headers={CLIENT_HEADER: client_version(), "Accept": "application/json"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        per_loop[key] = client
    return client


_HeadKey = tuple[str, str, str, str]


class _CoalescedHeadReads:
    """One in-flight request, and a short-lived result, per branch and lakeFS endpoint.

    All triggers of a triggerer process share one event loop; a thousand of them watching one
    branch on the same tick send one ``GET .../branches/{branch}``, not a thousand. Errors are not
    cached: every caller of a failed read sees the error, and the next tick tries again.
    """

    def __init__(self) -> None:
        self._inflight: dict[_HeadKey, asyncio.Future[str]] = {}
        self._recent: dict[_HeadKey, tuple[float, str]] = {}

    async def read(self, key: _HeadKey, fetch: Callable[[], Awaitable[str]], max_age: float) -> str:
        recent = self._recent.get(key)
        if recent is not None and time.monotonic() - recent[0] <= max_age:
            return recent[1]
        inflight = self._inflight.get(key)
        if inflight is None:
            inflight = asyncio.ensure_future(fetch())
            self._inflight[key] = inflight
            inflight.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(inflight)

    def _finished(self, key: _HeadKey, done: asyncio.Future[str]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled() and done.exception() is None:
            self._recent[key] = (time.monotonic(), done.result())
        else:
            self._recent.pop(key, None)


_SYNC_HOOKS: dict[tuple[str, LakeFSConnectionSettings], LakeFSHook] = {}

_HEAD_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _CoalescedHeadReads] = weakref.WeakKeyDictionary()


class LakeFSAsyncHook(BaseHook):
    """lakeFS for triggers: non-blocking branch-head reads, and "what changed" in a worker thread.

    :param lakefs_conn_id: Airflow connection of type ``lakefs``; read asynchronously on first use.
    """

    conn_name_attr = "lakefs_conn_id"
    default_conn_name = LakeFSHook.default_conn_name
    conn_type = "lakefs"
    hook_name = "lakeFS (async)"

    #: lakeFS requests sent by all async hooks of this process (head reads + log walks); for benchmarks.
    requests_sent = 0

    def __init__(self, lakefs_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lakefs_conn_id = lakefs_conn_id
        self._settings: LakeFSConnectionSettings | None = None
        self._hook: LakeFSHook | None = None

    async def settings(self) -> LakeFSConnectionSettings:
        """The connection's settings, read without blocking the event loop (once)."""
        if self._settings is None:
            connection = await BaseHook.aget_connection(self.lakefs_conn_id)
            self._settings = LakeFSConnectionSettings.from_connection(connection)
        return self._settings

    async def sync_hook(self) -> LakeFSHook:
        """The process's synchronous hook for this connection, for work run in a worker thread."""
        if self._hook is None:
            settings = await self.settings()
            # One synchronous hook (and lakeFS SDK client) per connection and endpoint in the
            # process, shared by every trigger: the SDK's connection pool is thread-safe.
            key = (self.lakefs_conn_id, settings)
            hook = _SYNC_HOOKS.get(key)
            if hook is None:
                hook = _SYNC_HOOKS[key] = LakeFSHook.from_settings(settings, self.lakefs_conn_id)
            self._hook = hook
        return self._hook

    async def get_branch_head(self, repository: str, branch: str, *, max_age: float = 0.0) -> str:
        """The branch's head commit id: at most one lakeFS request.

        Concurrent reads of the same branch by triggers of this process share one request; a read
        at most ``max_age`` seconds old is reused.
        """
        validate_repository(repository)
        validate_branch(branch)
        settings = await self.settings()
        reads = _HEAD_READS.setdefault(asyncio.get_running_loop(), _CoalescedHeadReads())
        key = (settings.endpoint, settings.access_key_id, repository, branch)
        return await reads.read(key, lambda: self._read_branch_head(settings, repository, branch), max_age)

    async def _read_branch_head(self, settings: LakeFSConnectionSettings, repository: str, branch: str) -> str:
        quoted_repository = urllib.parse.quote(repository, safe="")
        quoted_branch = urllib.parse.quote(branch, safe="")
        url = f"{settings.api_url}/repositories/{quoted_repository}/branches/{quoted_branch}"
        type(self).requests_sent += 1
        try:
            response = await _shared_client(settings).get(
                url, auth=(settings.access_key_id, settings.secret_access_key)
            )
            if response.status_code >= 300:
                raise LakeFSHTTPAnswerError(response.status_code, response.content)
            commit_id = response.json().get("commit_id")
        except (httpx.HTTPError, LakeFSHTTPAnswerError, json.JSONDecodeError, OSError) as exc:
            raise translate_lakefs_error(
                exc,
                action="read branch",
                repository=repository,
                ref=branch,
                endpoint=settings.endpoint,
                conn_id=self.lakefs_conn_id,
            ) from exc
        if not isinstance(commit_id, str) or not commit_id:
            raise LakeFSUnavailableError(
                f"lakeFS at {settings.endpoint} answered without a commit id for branch '{branch}' "
                f"of repository '{repository}'",
                repository=repository,
                ref=branch,
            )
        return commit_id

    async def matching_commits(
        self, repository: str, head: str, baseline: str, commit_filter: changes.CommitFilter
    ) -> list[LakeFSCommit]:
        """:func:`airflow_mlrepo.changes.matching_commits`, in a worker thread (counted in ``requests_sent``)."""
        hook = await self.sync_hook()
        before = hook.api_calls
        try:
            return await asyncio.to_thread(changes.matching_commits, hook, repository, head, baseline, commit_filter)
        finally:
            type(self).requests_sent += hook.api_calls - before


class LakeFSBranchPoller:
    """Reads one branch's head cheaply and walks its new commits only when the head moved.

    :param lakefs_conn_id: Airflow connection of type ``lakefs``; read asynchronously on first use.
    """

    def __init__(self, lakefs_conn_id: str, repository: str, branch: str, commit_filter: changes.CommitFilter) -> None:
        self.lakefs_conn_id = lakefs_conn_id
        self.repository = validate_repository(repository)
        self.branch = validate_branch(branch)
        self.commit_filter = commit_filter
        self.hook = LakeFSAsyncHook(lakefs_conn_id)

    async def settings(self) -> LakeFSConnectionSettings:
        return await self.hook.settings()

    async def branch_head(self, max_age: float = 0.0) -> str:
        """The branch's head commit id (see :meth:`LakeFSAsyncHook.get_branch_head`)."""
        return await self.hook.get_branch_head(self.repository, self.branch, max_age=max_age)

    async def reset_changed_paths(self, before: str, head: str) -> bool:
        """Whether the watched paths differ between ``before`` and ``head`` (a reset: no common line needed)."""
        if self.commit_filter.paths.any_path:
            return True
        hook = await self.hook.sync_hook()
        return await asyncio.to_thread(
            changes.commit_changed, hook, self.repository, head, self.commit_filter.paths, parent=before
        )

    async def new_commits(self, baseline: str, head: str) -> list[LakeFSCommit]:
        """Matching commits after ``baseline`` up to and including ``head``, oldest first.

        Raises :class:`CommitNotAncestorError` (naming the branch) when ``baseline`` is no longer in
        the history of ``head``: the branch was reset or force-moved.
        """
        validate_ref(baseline)
        validate_ref(head)
        try:
            # Walk from the head commit just read, not from the branch name: commits made while
            # walking are left for the next poll instead of being reported without their head.
            return await self.hook.matching_commits(self.repository, head, baseline, self.commit_filter)
        except CommitNotAncestorError as exc:
            raise CommitNotAncestorError(
                f"Commit {baseline} is no longer in the history of branch '{self.branch}' of repository "
                f"'{self.repository}' (head {head}): the branch was reset or force-moved",
                repository=self.repository,
                ref=self.branch,
            ) from exc


__all__ = ["LakeFSAsyncHook", "LakeFSBranchPoller"]
