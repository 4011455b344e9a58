"""Reaching lakeFS: the settings read from an Airflow connection of type ``lakefs``.

Shared by the synchronous :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook` and the asynchronous
:class:`~airflow_mlrepo.hooks.lakefs.LakeFSAsyncHook`, so both parse a connection the same way.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import LakeFSConnectionConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: The header naming this client (and its version) on every request to lakeFS.
CLIENT_HEADER = "X-Lakefs-Client"
#: Default seconds a request to lakeFS may take.
DEFAULT_REQUEST_TIMEOUT = 60.0


def client_version() -> str:
    """The value of :data:`CLIENT_HEADER`: ``airflow-mlrepo/<version>``."""
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
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
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
            request_timeout = float(timeout) if timeout not in (None, "") else DEFAULT_REQUEST_TIMEOUT
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


__all__ = ["CLIENT_HEADER", "LakeFSConnectionSettings", "client_version"]
