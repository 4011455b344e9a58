"""``LakeFSHook``: the one place airflow-mlrepo talks to lakeFS synchronously.

Built on the generated ``lakefs_sdk`` client. The client is created lazily on first use and
reused for the hook's lifetime. Every call goes through :meth:`LakeFSHook._call`, which
counts lakeFS requests (``hook.api_calls``) and translates every failure into the typed
errors of :mod:`airflow_mlrepo.exceptions`.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook
from lakefs_sdk.client import LakeFSClient
from lakefs_sdk.configuration import Configuration
from lakefs_sdk.exceptions import OpenApiException
from lakefs_sdk.models.branch_creation import BranchCreation
from lakefs_sdk.models.commit_creation import CommitCreation
from lakefs_sdk.models.merge import Merge
from lakefs_sdk.models.object_stats import ObjectStats
from lakefs_sdk.models.path_list import PathList
from lakefs_sdk.models.repository_creation import RepositoryCreation
from lakefs_sdk.models.revert_creation import RevertCreation
from lakefs_sdk.models.tag_creation import TagCreation
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from airflow_mlrepo.exceptions import (
    CommitNotAncestorError,
    LakeFSBadInputError,
    LakeFSConflictError,
    LakeFSConnectionConfigError,
    LakeFSError,
    LakeFSNotFoundError,
    NoCommitAsOfError,
    translate_lakefs_error,
)
from airflow_mlrepo.locations import (
    validate_branch,
    validate_path,
    validate_ref,
    validate_repository,
    validate_tag,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

T = TypeVar("T")

#: Chunk size for streaming object reads and writes. Memory use is bounded by this, not object size.
STREAM_CHUNK_BYTES = 1024 * 1024
#: Page size for commit logs (lakeFS's maximum).
LOG_PAGE_SIZE = 1000
MERGE_STRATEGIES = ("dest-wins", "source-wins")
_CLIENT_HEADER = "X-Lakefs-Client"


def _client_version() -> str:
    from airflow_mlrepo import __version__

    return f"airflow-mlrepo/{__version__}"


@dataclass(frozen=True)
class LakeFSConnectionSettings:
    """What is needed to reach lakeFS, read from an Airflow connection of type ``lakefs``.

    ``host`` may be a full URL (``http://lakefs:8000``) or a bare host name, in which case the
    connection's ``schema`` field (``http``/``https``, default ``http``) and ``port`` complete it,
    as Airflow's HTTP connection does.
    """

    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    verify_ssl: bool = True
    request_timeout: float = 60.0
    ui_url: str | None = None

    @classmethod
    def from_connection(cls, conn: Connection) -> LakeFSConnectionSettings:
        conn_id = conn.conn_id
        extra = conn.extra_dejson or {}

        def extra_field(name: str) -> Any:
            # New UI forms store plain keys; older connections may carry extra__lakefs__<name>.
            return extra.get(name, extra.get(f"extra__lakefs__{name}"))

        host = (conn.host or "").strip()
        if not host:
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn_id}' has no lakeFS endpoint: set its host to the lakeFS "
                "URL, e.g. http://localhost:8000"
            )
        if "://" not in host:
            scheme = (conn.schema or "http").strip() or "http"
            if scheme not in ("http", "https"):
                raise LakeFSConnectionConfigError(
                    f"Airflow connection '{conn_id}': schema must be 'http' or 'https', got {scheme!r}"
                )
            host = f"{scheme}://{host}"
        parsed = urllib.parse.urlsplit(host)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn_id}': host {conn.host!r} is not an http(s) URL of lakeFS"
            )
        netloc = parsed.netloc
        if conn.port and parsed.port is None:
            netloc = f"{netloc}:{conn.port}"
        path = parsed.path.rstrip("/")
        if path.endswith("/api/v1"):
            path = path[: -len("/api/v1")]
        endpoint = urllib.parse.urlunsplit((parsed.scheme, netloc, path, "", ""))
        if not conn.login or not conn.password:
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn_id}' needs the lakeFS access key id (login) and "
                "secret access key (password)"
            )
        verify = extra_field("verify_ssl")
        timeout = extra_field("request_timeout")
        try:
            request_timeout = float(timeout) if timeout not in (None, "") else 60.0
        except (TypeError, ValueError) as exc:
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn_id}': request_timeout must be a number of seconds, got {timeout!r}"
            ) from exc
        return cls(
            endpoint=endpoint,
            access_key_id=conn.login,
            secret_access_key=conn.password,
            verify_ssl=_as_bool(verify, default=True),
            request_timeout=request_timeout,
            ui_url=(extra_field("ui_url") or None),
        )

    @property
    def api_url(self) -> str:
        return f"{self.endpoint}/api/v1"

    @property
    def browser_url(self) -> str:
        """Base URL of the lakeFS web UI (``ui_url`` extra, else the endpoint)."""
        return (self.ui_url or self.endpoint).rstrip("/")


def _as_bool(value: Any, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class LakeFSCommit:
    """A lakeFS commit, as plain data that serializes to JSON (XCom, trigger events)."""

    id: str
    parents: tuple[str, ...]
    committer: str
    message: str
    creation_date: int
    metadata: Mapping[str, str]
    generation: int | None = None

    @property
    def created_at(self) -> datetime:
        """Creation time as an aware UTC datetime (lakeFS keeps whole seconds)."""
        return datetime.fromtimestamp(self.creation_date, tz=timezone.utc)

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @classmethod
    def from_sdk(cls, commit: Any) -> LakeFSCommit:
        return cls(
            id=commit.id,
            parents=tuple(commit.parents or ()),
            committer=commit.committer or "",
            message=commit.message or "",
            creation_date=int(commit.creation_date),
            metadata=dict(commit.metadata or {}),
            generation=getattr(commit, "generation", None),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": list(self.parents),
            "committer": self.committer,
            "message": self.message,
            "creation_date": self.creation_date,
            "metadata": dict(self.metadata),
            "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LakeFSCommit:
        return cls(
            id=data["id"],
            parents=tuple(data.get("parents") or ()),
            committer=data.get("committer", ""),
            message=data.get("message", ""),
            creation_date=int(data["creation_date"]),
            metadata=dict(data.get("metadata") or {}),
            generation=data.get("generation"),
        )


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


def validate_commit_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """Check commit metadata before it reaches lakeFS: string keys and string values only.

    lakeFS stores metadata as ``map<string,string>``; anything else would be coerced
    unpredictably or rejected server-side after part of the work was done.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise LakeFSBadInputError(
            f"Commit metadata must be a mapping of strings to strings, got {type(metadata).__name__}"
        )
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip() or key != key.strip():
            raise LakeFSBadInputError(
                f"Invalid commit metadata key {key!r}: keys are non-empty strings without "
                "leading or trailing whitespace"
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise LakeFSBadInputError(f"Invalid commit metadata key {key!r}: control characters")
        if not isinstance(value, str):
            raise LakeFSBadInputError(
                f"Invalid commit metadata value for key {key!r}: lakeFS metadata values are strings, "
                f"got {type(value).__name__} {value!r}; convert it explicitly (e.g. json.dumps)"
            )
        if "\x00" in value:
            raise LakeFSBadInputError(f"Invalid commit metadata value for key {key!r}: contains NUL")
        checked[key] = value
    return checked


class LakeFSHook(BaseHook):
    """Interact with lakeFS through an Airflow connection of type ``lakefs``.

    :param lakefs_conn_id: the Airflow connection id (default ``lakefs_default``).
    """

    conn_name_attr = "lakefs_conn_id"
    default_conn_name = "lakefs_default"
    conn_type = "lakefs"
    hook_name = "lakeFS"

    def __init__(self, lakefs_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lakefs_conn_id = lakefs_conn_id
        #: Number of HTTP requests this hook has sent to lakeFS (for benchmarks and tests).
        self.api_calls = 0

    # ------------------------------------------------------------------ client

    @cached_property
    def settings(self) -> LakeFSConnectionSettings:
        return LakeFSConnectionSettings.from_connection(self.get_connection(self.lakefs_conn_id))

    @cached_property
    def client(self) -> LakeFSClient:

        settings = self.settings
        configuration = Configuration(
            host=settings.api_url,
            username=settings.access_key_id,
            password=settings.secret_access_key,
        )
        configuration.verify_ssl = settings.verify_ssl
        # lakefs_sdk formats query datetimes with '%z' (+0000), which lakeFS's RFC 3339 check
        # rejects; every datetime we send is UTC, so write the 'Z' form.
        configuration.datetime_format = "%Y-%m-%dT%H:%M:%S.%fZ"
        return LakeFSClient(  # type: ignore[no-untyped-call]
            configuration, header_name=_CLIENT_HEADER, header_value=_client_version()
        )

    def get_conn(self) -> LakeFSClient:
        """The lazily built, reused ``lakefs_sdk.LakeFSClient``."""
        return self.client

    @classmethod
    def from_settings(cls, settings: LakeFSConnectionSettings, lakefs_conn_id: str = default_conn_name) -> LakeFSHook:
        """A hook on connection settings already read elsewhere (e.g. asynchronously in a trigger).

        It never reads the Airflow connection itself, so it can run in a worker thread of the
        triggerer, where synchronous connection lookups are not available.
        """
        hook = cls(lakefs_conn_id)
        hook.__dict__["settings"] = settings  # pre-fill the cached property
        return hook

    def _call(
        self,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        repository: str | None = None,
        ref: str | None = None,
        path: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Run one lakeFS SDK call, counted, with the connection's timeout and our error types."""
        kwargs.setdefault("_request_timeout", self.settings.request_timeout)
        with self._translated_errors(action, repository=repository, ref=ref, path=path):
            self.api_calls += 1
            return fn(*args, **kwargs)

    @contextmanager
    def _translated_errors(
        self, action: str, *, repository: str | None, ref: str | None, path: str | None
    ) -> Iterator[None]:
        try:
            yield
        except LakeFSError:
            raise
        except Exception as exc:
            if not _is_lakefs_transport_error(exc):
                raise
            raise translate_lakefs_error(
                exc,
                action=action,
                repository=repository,
                ref=ref,
                path=path,
                endpoint=self.settings.endpoint,
                conn_id=self.lakefs_conn_id,
            ) from exc

    # ------------------------------------------------------------ connection UI

    def test_connection(self) -> tuple[bool, str]:
        """Answer the Airflow UI's Test button: reach lakeFS and check the credentials."""
        try:
            version = self.server_version()
            user = self._call("read the current user", self.client.auth_api.get_current_user)
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to lakeFS {version} at {self.settings.endpoint} as '{user.user.id}'"

    def server_version(self) -> str:
        """The lakeFS server version (``GET /config`` → ``version_config.version``)."""
        config = self._call("read the server configuration", self.client.config_api.get_config)
        version_config = getattr(config, "version_config", None)
        return str(getattr(version_config, "version", None) or "unknown")

    # ------------------------------------------------------------ repositories

    def create_repository(
        self, repository: str, storage_namespace: str, *, default_branch: str = "main", exist_ok: bool = False
    ) -> None:
        """Create a repository (with its initial commit)."""
        validate_repository(repository)
        validate_branch(default_branch)
        try:
            self._call(
                "create repository",
                self.client.repositories_api.create_repository,
                RepositoryCreation.from_dict(
                    {
                        "name": repository,
                        "storage_namespace": storage_namespace,
                        "default_branch": default_branch,
                    }
                ),
                repository=repository,
            )
        except LakeFSConflictError:
            if not exist_ok:
                raise

    def repository_storage_namespace(self, repository: str) -> str:
        """The storage namespace a repository was created with (``LakeFSNotFoundError`` if it is absent)."""
        validate_repository(repository)
        answer = self._call(
            "get repository",
            self.client.repositories_api.get_repository,
            repository,
            repository=repository,
        )
        return str(answer.storage_namespace)

    def delete_repository(self, repository: str, *, missing_ok: bool = False) -> None:
        validate_repository(repository)
        try:
            self._call(
                "delete repository",
                self.client.repositories_api.delete_repository,
                repository,
                repository=repository,
            )
        except LakeFSNotFoundError:
            if not missing_ok:
                raise

    # ------------------------------------------------------------------ refs

    def get_commit(self, repository: str, ref: str) -> LakeFSCommit:
        """The commit any ref or ref expression (``main``, ``main~3``, tag, commit prefix) points at."""
        validate_repository(repository)
        validate_ref(ref)
        commit = self._call(
            "resolve ref",
            self.client.commits_api.get_commit,
            repository,
            ref,
            repository=repository,
            ref=ref,
        )
        return LakeFSCommit.from_sdk(commit)

    def resolve_commit_id(self, repository: str, ref: str) -> str:
        """Resolve any ref or ref expression to a full, immutable commit id."""
        return self.get_commit(repository, ref).id

    def get_branch_head(self, repository: str, branch: str) -> str:
        """The commit id a branch points at (its committed head)."""
        validate_repository(repository)
        validate_branch(branch)
        ref = self._call(
            "read branch",
            self.client.branches_api.get_branch,
            repository,
            branch,
            repository=repository,
            ref=branch,
        )
        return str(ref.commit_id)

    def branch_exists(self, repository: str, branch: str) -> bool:
        try:
            self.get_branch_head(repository, branch)
        except LakeFSNotFoundError as exc:
            if _names_missing_repository(exc):
                raise
            return False
        return True

    def is_ancestor(self, repository: str, commit_id: str, branch: str) -> bool:
        """Whether ``commit_id`` (full id or unique prefix) is in the history of ``branch``.

        One lakeFS call: the merge base of the commit and the branch is the commit itself exactly
        when it is an ancestor of (or equal to) the branch head.
        """
        validate_repository(repository)
        validate_ref(commit_id)
        validate_branch(branch)
        result = self._call(
            "find the merge base",
            self.client.refs_api.find_merge_base,
            repository,
            commit_id,
            branch,
            repository=repository,
            ref=branch,
        )
        return bool(result.base_commit_id and str(result.base_commit_id).startswith(commit_id))

    def log_commits(
        self,
        repository: str,
        ref: str,
        *,
        amount: int | None = None,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        first_parent: bool = False,
        since: datetime | None = None,
        stop_at: str | None = None,
    ) -> Iterator[LakeFSCommit]:
        """Commits reachable from ``ref``, newest first, paging through lakeFS's log.

        ``amount`` bounds how many are yielded in total (``None``: all).
        """
        validate_repository(repository)
        validate_ref(ref)
        yielded = 0
        after: str | None = None
        while True:
            page_size = LOG_PAGE_SIZE if amount is None else max(1, min(LOG_PAGE_SIZE, amount - yielded))
            page = self._call(
                "log commits",
                self.client.refs_api.log_commits,
                repository,
                ref,
                after=after,
                amount=page_size,
                prefixes=list(prefixes) if prefixes else None,
                objects=list(objects) if objects else None,
                first_parent=first_parent or None,
                since=since.astimezone(timezone.utc) if since else None,
                stop_at=stop_at,
                repository=repository,
                ref=ref,
            )
            for commit in page.results:
                yield LakeFSCommit.from_sdk(commit)
                yielded += 1
                if amount is not None and yielded >= amount:
                    return
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def commits_since(
        self,
        repository: str,
        branch: str,
        since_commit: str,
        *,
        prefixes: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        first_parent: bool = False,
        max_commits: int = 10_000,
    ) -> list[LakeFSCommit]:
        """Commits on ``branch`` newer than ``since_commit``, **oldest first**, without ``since_commit``.

        With ``prefixes``/``objects`` only commits that touch them are returned (merge commits
        are never path matches; the commits they bring in are). Raises
        :class:`CommitNotAncestorError` at once, without walking the history, when
        ``since_commit`` is no longer an ancestor of the branch head (a reset or force-moved
        branch).
        """
        validate_repository(repository)
        validate_branch(branch)
        for prefix in prefixes or ():
            validate_path(prefix)
        baseline = self.resolve_commit_id(repository, since_commit)
        if not self.is_ancestor(repository, baseline, branch):
            raise CommitNotAncestorError(
                f"Commit {baseline} is no longer in the history of branch '{branch}' of repository "
                f"'{repository}': the branch was reset or force-moved",
                repository=repository,
                ref=branch,
            )
        new: list[LakeFSCommit] = []
        for commit in self.log_commits(repository, branch, stop_at=baseline, first_parent=first_parent):
            if commit.id == baseline:
                break
            new.append(commit)
            if len(new) > max_commits:
                raise LakeFSBadInputError(
                    f"More than {max_commits} commits on branch '{branch}' of repository '{repository}' "
                    f"since {baseline}; raise max_commits or move the baseline forward",
                    repository=repository,
                    ref=branch,
                )
        else:
            if first_parent and new:
                raise CommitNotAncestorError(
                    f"Commit {baseline} is not on the first-parent history of branch '{branch}' of "
                    f"repository '{repository}'",
                    repository=repository,
                    ref=branch,
                )
        if new and (prefixes or objects):
            # lakeFS's path-filtered log does not stop at stop_at unless that commit itself
            # matches; bound the walk by time instead and keep only the commits found above.
            new_ids = {c.id for c in new}
            oldest = min(c.creation_date for c in new)
            matching = {
                c.id
                for c in self.log_commits(
                    repository,
                    branch,
                    prefixes=prefixes,
                    objects=objects,
                    first_parent=first_parent,
                    since=datetime.fromtimestamp(oldest, tz=timezone.utc),
                )
                if c.id in new_ids
            }
            new = [c for c in new if c.id in matching]
        new.reverse()
        return new

    def branch_head_as_of(self, repository: str, branch: str, when: datetime) -> LakeFSCommit:
        """The commit that was the head of ``branch`` at time ``when``.

        Walks the branch's first-parent history (the commits the branch itself pointed at) by
        binary search over ``<commit>~N`` ref expressions, using the head commit's
        ``generation`` as an upper bound of the history depth: ``ceil(log2(generation + 1)) + 1``
        lakeFS calls. Assumes creation dates do not increase going back along the first-parent
        chain (true unless commits were created with explicit past dates), except that the
        repository's root commit (no parents) is taken as the oldest, so data committed with past
        dates into a new repository is found; lakeFS keeps whole seconds, so a commit made during
        the second of ``when`` counts as before it.
        Raises :class:`NoCommitAsOfError` if the branch has no commit at or before ``when``.
        """
        if when.tzinfo is None:
            raise LakeFSBadInputError(
                f"branch_head_as_of needs a timezone-aware time, got naive {when.isoformat()}",
                repository=repository,
                ref=branch,
            )
        cutoff = int(when.timestamp())
        validate_repository(repository)
        validate_branch(branch)
        head = self.get_commit(repository, branch)
        if head.creation_date <= cutoff:
            return head
        if head.generation is None:
            raise LakeFSError(
                "lakeFS did not report commit generations; it is too old for as-of lookups",
                repository=repository,
                ref=branch,
            )
        # Invariant: branch~lo is newer than the cutoff; branch~hi is at/before it or beyond the
        # root (generation >= first-parent depth + 1, so branch~(generation+1) never exists).
        # Probes are relative to the commit at lo (``<id>~k``): lakeFS resolves ``~k`` by walking
        # k parents, so the server walks at most the history depth in total, not depth * log.
        lo, hi = 0, head.generation + 1
        at_lo, at_hi = head, None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            candidate = self._commit_or_none(repository, f"{at_lo.id}~{mid - lo}")
            # The repository's root commit ("Repository created") counts as older than everything:
            # data committed with explicit past dates after creation is then still found.
            if candidate is None or candidate.creation_date <= cutoff or not candidate.parents:
                hi, at_hi = mid, candidate
            else:
                lo, at_lo = mid, candidate
        if at_hi is None or at_hi.creation_date > cutoff:
            raise NoCommitAsOfError(
                f"Branch '{branch}' of repository '{repository}' has no commit at or before {when.isoformat()}",
                repository=repository,
                ref=branch,
            )
        return at_hi

    def commit_touches_paths(
        self,
        repository: str,
        commit_id: str,
        prefixes: Sequence[str] = (),
        objects: Sequence[str] = (),
        *,
        parent: str | None = None,
    ) -> bool:
        """Whether ``commit_id`` changed an object under one of ``prefixes`` or one of ``objects``.

        Compared with ``parent``, by default the commit's first parent, so a merge commit counts as
        touching a path when it brought changes to it into the branch. A commit without parents
        (the repository's first commit) touches everything, and so does any commit when neither
        ``prefixes`` nor ``objects`` is given. At most one ``diff`` call per prefix and object.
        """
        validate_repository(repository)
        validate_ref(commit_id)
        for path in (*prefixes, *objects):
            validate_path(path)
        if not prefixes and not objects:
            return True
        if parent is None:
            commit = self.get_commit(repository, commit_id)
            if not commit.parents:
                return True
            parent = commit.parents[0]
        checks = [(prefix, False) for prefix in prefixes] + [(obj, True) for obj in objects]
        for path, exact in checks:
            page = self._call(
                "diff commit against its parent",
                self.client.refs_api.diff_refs,
                repository,
                parent,
                commit_id,
                prefix=path or None,
                amount=1,
                type="two_dot",
                repository=repository,
                ref=commit_id,
                path=path,
            )
            # Diff entries come in path order: an object sorts before every longer path it prefixes.
            if page.results and (not exact or page.results[0].path == path):
                return True
        return False

    def _commit_or_none(self, repository: str, ref: str) -> LakeFSCommit | None:
        try:
            return self.get_commit(repository, ref)
        except LakeFSNotFoundError as exc:
            if _names_missing_repository(exc):
                raise
            return None

    # --------------------------------------------------------------- branches

    def create_branch(self, repository: str, branch: str, source_ref: str) -> str:
        """Create ``branch`` at ``source_ref``; return its head commit id.

        Idempotent: if the branch already exists and points at the commit ``source_ref``
        resolves to, nothing is done. If it points elsewhere, :class:`LakeFSConflictError`.
        """
        validate_repository(repository)
        validate_branch(branch)
        validate_ref(source_ref)
        try:
            return str(
                self._call(
                    "create branch",
                    self.client.branches_api.create_branch,
                    repository,
                    BranchCreation.from_dict({"name": branch, "source": source_ref}),
                    repository=repository,
                    ref=branch,
                )
            ).strip()
        except LakeFSConflictError:
            head = self.get_branch_head(repository, branch)
            source_commit = self.resolve_commit_id(repository, source_ref)
            if head == source_commit:
                return head
            raise LakeFSConflictError(
                f"Cannot create branch '{branch}' in repository '{repository}' from '{source_ref}' "
                f"({source_commit}): it already exists at {head}",
                repository=repository,
                ref=branch,
            ) from None

    def list_branches(self, repository: str, prefix: str = "") -> list[str]:
        """Names of the branches of ``repository`` that start with ``prefix``."""
        validate_repository(repository)
        names: list[str] = []
        after = ""
        while True:
            page = self._call(
                "list branches",
                self.client.branches_api.list_branches,
                repository,
                prefix=prefix or None,
                after=after or None,
                amount=LOG_PAGE_SIZE,
                repository=repository,
            )
            names.extend(ref.id for ref in page.results)
            if not page.pagination.has_more:
                return names
            after = page.pagination.next_offset

    def delete_branch(self, repository: str, branch: str, *, missing_ok: bool = False) -> None:
        validate_repository(repository)
        validate_branch(branch)
        try:
            self._call(
                "delete branch",
                self.client.branches_api.delete_branch,
                repository,
                branch,
                repository=repository,
                ref=branch,
            )
        except LakeFSNotFoundError as exc:
            if not missing_ok or _names_missing_repository(exc):
                raise

    def commit(
        self,
        repository: str,
        branch: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        allow_empty: bool = False,
        date: int | None = None,
    ) -> LakeFSCommit:
        """Commit the staged changes of ``branch`` with string ``metadata``; return the commit."""
        validate_repository(repository)
        validate_branch(branch)
        checked = validate_commit_metadata(metadata)
        if not isinstance(message, str) or not message.strip():
            raise LakeFSBadInputError(
                f"A commit to branch '{branch}' of repository '{repository}' needs a non-empty message",
                repository=repository,
                ref=branch,
            )
        commit = self._call(
            "commit",
            self.client.commits_api.commit,
            repository,
            branch,
            CommitCreation.from_dict(
                {"message": message, "metadata": checked, "allow_empty": allow_empty, "date": date}
            ),
            repository=repository,
            ref=branch,
        )
        return LakeFSCommit.from_sdk(commit)

    def merge(
        self,
        repository: str,
        source_ref: str,
        destination_branch: str,
        *,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
        strategy: str | None = None,
        allow_empty: bool = False,
    ) -> str:
        """Merge ``source_ref`` into ``destination_branch``; return the resulting commit id.

        ``strategy`` is ``None`` (a conflict raises :class:`LakeFSConflictError`), ``"dest-wins"``
        or ``"source-wins"``.
        """
        validate_repository(repository)
        validate_ref(source_ref)
        validate_branch(destination_branch)
        if strategy is not None and strategy not in MERGE_STRATEGIES:
            raise LakeFSBadInputError(
                f"Unknown merge strategy {strategy!r} for merging '{source_ref}' into "
                f"'{destination_branch}': use one of {', '.join(MERGE_STRATEGIES)} or None",
                repository=repository,
                ref=destination_branch,
            )
        checked = validate_commit_metadata(metadata)
        result = self._call(
            f"merge '{source_ref}' into branch",
            self.client.refs_api.merge_into_branch,
            repository,
            source_ref,
            destination_branch,
            merge=Merge.from_dict(
                {"message": message, "metadata": checked, "strategy": strategy, "allow_empty": allow_empty}
            ),
            repository=repository,
            ref=destination_branch,
        )
        return str(result.reference)

    def revert(
        self,
        repository: str,
        branch: str,
        ref: str,
        *,
        parent_number: int | None = None,
        allow_empty: bool = False,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> LakeFSCommit:
        """Revert the changes of commit ``ref`` on ``branch``; return the new head commit.

        A merge commit needs ``parent_number`` (1-based: the parent whose side is kept).
        ``message`` and ``metadata`` replace lakeFS's default message and metadata of the revert commit.
        """
        validate_repository(repository)
        validate_branch(branch)
        target = self.get_commit(repository, ref)
        if target.is_merge and parent_number is None:
            raise LakeFSBadInputError(
                f"Commit {target.id} ('{ref}') in repository '{repository}' is a merge commit: "
                "pass parent_number (1 = revert relative to its first parent)",
                repository=repository,
                ref=ref,
            )
        self._call(
            f"revert commit {target.id} on branch",
            self.client.branches_api.revert_branch,
            repository,
            branch,
            RevertCreation.from_dict(
                {
                    "ref": target.id,
                    "parent_number": parent_number or 0,
                    "allow_empty": allow_empty,
                    "commit_overrides": (
                        {"message": message, "metadata": validate_commit_metadata(metadata)}
                        if message or metadata
                        else None
                    ),
                }
            ),
            repository=repository,
            ref=branch,
        )
        return self.get_commit(repository, branch)

    def create_tag(self, repository: str, tag: str, ref: str) -> str:
        """Create tag ``tag`` at ``ref``; return its commit id. Idempotent for the same commit."""
        validate_repository(repository)
        validate_tag(tag)
        validate_ref(ref)
        try:
            result = self._call(
                "create tag",
                self.client.tags_api.create_tag,
                repository,
                TagCreation.from_dict({"id": tag, "ref": ref}),
                repository=repository,
                ref=tag,
            )
            return str(result.commit_id)
        except LakeFSConflictError:
            existing = self.resolve_commit_id(repository, tag)
            wanted = self.resolve_commit_id(repository, ref)
            if existing == wanted:
                return existing
            raise LakeFSConflictError(
                f"Cannot create tag '{tag}' in repository '{repository}' at '{ref}' ({wanted}): "
                f"it already exists at {existing}",
                repository=repository,
                ref=tag,
            ) from None

    # ---------------------------------------------------------------- objects

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
            if _names_missing_repository(exc) or "ref" in (exc.server_message or "").lower():
                raise
            return False
        return True

    def list_objects(self, repository: str, ref: str, prefix: str = "") -> Iterator[LakeFSObjectStat]:
        """Every object under ``prefix`` at ``ref`` (recursive), in path order."""
        validate_repository(repository)
        validate_ref(ref)
        validate_path(prefix)
        after = ""
        while True:
            page = self._call(
                "list objects",
                self.client.objects_api.list_objects,
                repository,
                ref,
                prefix=prefix or None,
                after=after or None,
                amount=LOG_PAGE_SIZE,
                repository=repository,
                ref=ref,
                path=prefix,
            )
            for stats in page.results:
                yield LakeFSObjectStat.from_sdk(stats)
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

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
        headers[_CLIENT_HEADER] = _client_version()
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
            _raise_for_status(response)
            return LakeFSObjectStat.from_sdk(ObjectStats.from_dict(json.loads(response.data)))

    def read_object(self, repository: str, ref: str, path: str) -> Iterator[bytes]:
        """Stream an object's bytes in chunks of at most :data:`STREAM_CHUNK_BYTES`."""
        validate_repository(repository)
        validate_ref(ref)
        validate_path(path)
        url, resource_path = self._object_url(repository, "refs", ref, path)
        api_client = self.client.objects_api.api_client
        headers: dict[str, str] = {_CLIENT_HEADER: _client_version()}
        api_client.update_params_for_auth(headers, None, ["basic_auth"], resource_path, "GET", None)
        with self._translated_errors("read object", repository=repository, ref=ref, path=path):
            self.api_calls += 1
            response = api_client.rest_client.pool_manager.request(
                "GET", url, headers=headers, preload_content=False, timeout=self.settings.request_timeout
            )
            try:
                if response.status >= 400:
                    raise _HTTPStatusError(response.status, response.read())
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


class _HTTPStatusError(Exception):
    def __init__(self, status: int, data: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = data


def _raise_for_status(response: Any) -> None:
    if response.status >= 400:
        raise _HTTPStatusError(response.status, response.data)


def _is_lakefs_transport_error(exc: BaseException) -> bool:
    """Errors that come from talking to lakeFS (as opposed to bugs in our own code)."""
    return isinstance(
        exc,
        OpenApiException | Urllib3HTTPError | _HTTPStatusError | ConnectionError | TimeoutError,
    )


def _names_missing_repository(exc: LakeFSNotFoundError) -> bool:
    """Whether a 404 is about the repository itself (never to be read as 'branch missing')."""
    return "repository not found" in (exc.server_message or "").lower()


__all__ = [
    "LakeFSCommit",
    "LakeFSConnectionSettings",
    "LakeFSHook",
    "LakeFSObjectStat",
    "validate_commit_metadata",
]
