"""Reaching lakeFS: the settings read from an Airflow connection of type ``lakefs``.

Shared by the synchronous :class:`~airflow_mlrepo.hooks.lakefs.LakeFSHook` and the asynchronous
:class:`~airflow_mlrepo.hooks.lakefs.LakeFSAsyncHook`, so both parse a connection the same way.
"""

from __future__ import annotations

import json
import math
import re
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
        """Read and check every field; anything unusable is a :class:`LakeFSConnectionConfigError` naming it."""
        conn_id = conn.conn_id
        extra = _extras(conn)

        def extra_field(name: str) -> Any:
            # New UI forms store plain keys; older connections may carry extra__lakefs__<name>.
            return extra.get(name, extra.get(f"extra__lakefs__{name}"))

        if not conn.login or not conn.password:
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn_id}' needs the lakeFS access key id (login) and "
                "secret access key (password)"
            )
        return cls(
            endpoint=_endpoint(conn),
            access_key_id=conn.login,
            secret_access_key=conn.password,
            verify_ssl=_as_bool(conn_id, "verify_ssl", extra_field("verify_ssl"), default=True),
            request_timeout=_seconds(conn_id, "request_timeout", extra_field("request_timeout")),
            ui_url=_ui_url(conn_id, extra_field("ui_url")),
        )

    @property
    def api_url(self) -> str:
        return f"{self.endpoint}/api/v1"

    @property
    def browser_url(self) -> str:
        """Base URL of the lakeFS web UI (``ui_url`` extra, else the endpoint)."""
        return (self.ui_url or self.endpoint).rstrip("/")


def _extras(conn: Connection) -> dict[str, Any]:
    """The connection's extras as a JSON object (Airflow itself would log invalid JSON and drop it)."""
    raw = getattr(conn, "extra", None)
    if isinstance(raw, str) and not raw.strip():
        return {}
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn.conn_id}': its extra is not valid JSON ({exc})"
            ) from None
        if not isinstance(value, dict):
            raise LakeFSConnectionConfigError(
                f"Airflow connection '{conn.conn_id}': its extra must be a JSON object, got {type(value).__name__}"
            )
    extra = conn.extra_dejson or {}  # (masks secret-looking values in logs)
    if not isinstance(extra, dict):
        raise LakeFSConnectionConfigError(f"Airflow connection '{conn.conn_id}': its extra must be a JSON object")
    return extra


def _endpoint(conn: Connection) -> str:
    """``host`` as a URL (``schema`` and ``port`` complete a bare host name), without ``/api/v1``."""
    conn_id = conn.conn_id
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
    try:
        parsed = urllib.parse.urlsplit(host)
        port = parsed.port
    except ValueError as exc:
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': host {_shown(conn.host)!r} is not a URL of lakeFS ({exc})"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': host {_shown(conn.host)!r} is not an http(s) URL of lakeFS"
        )
    if parsed.username is not None or parsed.password is not None:
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': the host URL carries credentials; put the access key id in "
            "login and the secret access key in password"
        )
    netloc = parsed.netloc
    if conn.port is not None and port is None:
        netloc = f"{netloc.rstrip(':')}:{conn.port}"
    path = parsed.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    endpoint = urllib.parse.urlunsplit((parsed.scheme, netloc, path.rstrip("/"), "", ""))
    try:
        final_port = urllib.parse.urlsplit(endpoint).port
    except ValueError as exc:
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': host {_shown(conn.host)!r} and port {conn.port} do not make a URL ({exc})"
        ) from None
    if final_port is not None and not 0 < final_port < 65536:
        raise LakeFSConnectionConfigError(f"Airflow connection '{conn_id}': port {final_port} is not a TCP port")
    return endpoint


def _shown(host: str | None) -> str:
    """``host`` for an error message, without any ``user:password@`` it carries."""
    return re.sub(r"^(.*?//)?[^/]*@", lambda m: f"{m.group(1) or ''}***@", host or "")


def _seconds(conn_id: str, name: str, value: Any) -> float:
    if value is None or value == "":
        return DEFAULT_REQUEST_TIMEOUT
    try:
        if isinstance(value, bool):
            raise TypeError("a boolean")
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': {name} must be a positive number of seconds, got {value!r}"
        )
    return seconds


def _ui_url(conn_id: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        ok = isinstance(value, str) and urllib.parse.urlsplit(value).scheme in ("http", "https")
    except ValueError:
        ok = False
    if not ok:
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': ui_url must be the http(s) URL of the lakeFS web UI, got {value!r}"
        )
    return str(value)


def _as_bool(conn_id: str, name: str, value: Any, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if not isinstance(value, (str, int, float)):
        raise LakeFSConnectionConfigError(
            f"Airflow connection '{conn_id}': {name} must be true or false, got {value!r}"
        )
    return str(value).strip().lower() not in ("0", "false", "no", "off")


__all__ = ["CLIENT_HEADER", "LakeFSConnectionSettings", "client_version"]
