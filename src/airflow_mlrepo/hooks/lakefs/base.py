"""The core every part of :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook` builds on.

The ``lakefs_sdk`` client is created lazily on first use and reused for the hook's lifetime.
Every call goes through :meth:`LakeFSHookBase._call`, which counts lakeFS requests
(``hook.api_calls``) and hands every failure to
:func:`~airflow_mlrepo.exceptions.translate_lakefs_error`, the one place lakeFS errors become ours.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook
from lakefs_sdk.client import LakeFSClient
from lakefs_sdk.configuration import Configuration
from lakefs_sdk.models.repository_creation import RepositoryCreation

from airflow_mlrepo.exceptions import (
    LakeFSConflictError,
    LakeFSError,
    LakeFSNotFoundError,
    is_lakefs_transport_error,
    translate_lakefs_error,
)
from airflow_mlrepo.hooks.lakefs.connection import CLIENT_HEADER, LakeFSConnectionSettings, client_version
from airflow_mlrepo.locations import validate_branch, validate_repository

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")
_Hook = TypeVar("_Hook", bound="LakeFSHookBase")

#: Page size for commit logs, object and branch listings (lakeFS's maximum).
LOG_PAGE_SIZE = 1000


class LakeFSHookBase(BaseHook):
    """Connection, client, counted and translated calls, and repositories.

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
            configuration, header_name=CLIENT_HEADER, header_value=client_version()
        )

    def get_conn(self) -> LakeFSClient:
        """The lazily built, reused ``lakefs_sdk.LakeFSClient``."""
        return self.client

    @classmethod
    def from_settings(
        cls: type[_Hook], settings: LakeFSConnectionSettings, lakefs_conn_id: str = default_conn_name
    ) -> _Hook:
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

    def _paged(
        self,
        action: str,
        fn: Callable[..., Any],
        *args: Any,
        limit: int | None = None,
        repository: str | None = None,
        ref: str | None = None,
        path: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Every result of a paginated lakeFS listing, page after page (each page one :meth:`_call`).

        ``limit`` bounds how many are yielded in total (``None``: all) and shrinks the last page
        to what is still wanted.
        """
        yielded = 0
        after: str | None = None
        while True:
            page_size = LOG_PAGE_SIZE if limit is None else max(1, min(LOG_PAGE_SIZE, limit - yielded))
            page = self._call(
                action, fn, *args, after=after, amount=page_size, repository=repository, ref=ref, path=path, **kwargs
            )
            for result in page.results:
                yield result
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    @contextmanager
    def _translated_errors(
        self, action: str, *, repository: str | None, ref: str | None, path: str | None
    ) -> Iterator[None]:
        try:
            yield
        except LakeFSError:
            raise
        except Exception as exc:
            if not is_lakefs_transport_error(exc):
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

    def _get_repository(self, repository: str) -> Any:
        validate_repository(repository)
        return self._call(
            "get repository",
            self.client.repositories_api.get_repository,
            repository,
            repository=repository,
        )

    def repository_storage_namespace(self, repository: str) -> str:
        """The storage namespace a repository was created with (``LakeFSNotFoundError`` if it is absent)."""
        return str(self._get_repository(repository).storage_namespace)

    def repository_default_branch(self, repository: str) -> str:
        """The default branch of a repository (``LakeFSNotFoundError`` if it is absent)."""
        return str(self._get_repository(repository).default_branch)

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


__all__ = ["LOG_PAGE_SIZE", "LakeFSHookBase"]
