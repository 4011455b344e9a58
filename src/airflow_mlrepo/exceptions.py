"""The one exceptions module of airflow-mlrepo.

Every error the provider raises derives from :class:`MlRepoError`. lakeFS failures are
translated into typed errors in exactly one place, :func:`translate_lakefs_error`, which
maps the HTTP status of the lakeFS answer to a class and writes a message that names the
repository, ref and path involved.
"""

from __future__ import annotations

import json
from typing import Any


class MlRepoError(Exception):
    """Root of every error raised by airflow-mlrepo."""


class InvalidLakeFSLocationError(MlRepoError, ValueError):
    """A ``lakefs://repo/ref/path`` location, or one of its parts, is malformed."""


class LakeFSConnectionConfigError(MlRepoError):
    """The Airflow connection for lakeFS is incomplete or malformed."""


class InvalidWebhookEventError(MlRepoError, ValueError):
    """A lakeFS webhook body that is not a usable post-commit/post-merge event.

    ``status`` is the HTTP answer it deserves (400: not a JSON object, 422: not such an event) and
    ``errors`` the fields that are wrong, ``[{"field": ..., "message": ...}]``.
    """

    def __init__(self, message: str, *, status: int, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class StackError(MlRepoError):
    """A required part of the local stack could not be brought up, stopped or read."""


class StackNotUpError(StackError):
    """There is no ``stack.env`` yet: ``mlrepo stack up`` has never completed here."""


class MarquezUnavailableError(StackError):
    """Marquez cannot be provided here; the message is the reason shown to users."""


class MarquezReadError(MlRepoError):
    """Reading lineage back from Marquez failed; the message names the Marquez, the route and the answer."""


class LakeFSError(MlRepoError):
    """A lakeFS call failed. Carries what was being done and on which object."""

    status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        repository: str | None = None,
        ref: str | None = None,
        path: str | None = None,
        status: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.repository = repository
        self.ref = ref
        self.path = path
        if status is not None:
            self.status = status
        self.server_message = server_message


class LakeFSBadInputError(LakeFSError):
    """The request was rejected as invalid (HTTP 400/422), or was invalid before it was sent."""


class LakeFSAuthError(LakeFSError):
    """The credentials were rejected (HTTP 401) or lack a permission (HTTP 403)."""


class LakeFSNotFoundError(LakeFSError):
    """The repository, branch, ref or object does not exist (HTTP 404)."""

    @property
    def names_missing_repository(self) -> bool:
        """Whether the 404 is about the repository itself (never to be read as "branch missing")."""
        return "repository not found" in (self.server_message or "").lower()


class LakeFSConflictError(LakeFSError):
    """The operation conflicts with the current state (HTTP 409), e.g. a merge conflict."""


class LakeFSPreconditionFailedError(LakeFSError):
    """A precondition failed (HTTP 412): a pre-merge/pre-commit hook or a conditional write."""


class LakeFSUnavailableError(LakeFSError):
    """lakeFS could not be reached, timed out, or answered with a server error (5xx)."""


class CommitNotAncestorError(LakeFSError):
    """A commit expected in a branch's history is no longer an ancestor of its head.

    This is what a branch reset or force-move under a pinned run looks like.
    """


class NoCommitAsOfError(LakeFSNotFoundError):
    """A branch had no commit at or before the requested time."""


class NoNewCommitsError(MlRepoError):
    """A commit sensor's window is closed (a backfilled run's data interval has passed) and holds no
    matching commit, so waiting longer cannot change the answer."""

    def __init__(self, message: str, *, repository: str, branch: str) -> None:
        super().__init__(message)
        self.repository = repository
        self.branch = branch


class CommitDetectionError(MlRepoError):
    """A commit trigger reported an error event the sensor cannot map to a more specific lakeFS error."""


class AirflowAPIError(MlRepoError):
    """Airflow's REST API refused a request; the message names the DAG, the run and Airflow's answer."""


class NoProvenanceError(MlRepoError):
    """An object or commit carries no airflow-mlrepo provenance (it was not written by an mlrepo task)."""

    def __init__(self, message: str, *, repository: str, ref: str, path: str = "") -> None:
        super().__init__(message)
        self.repository = repository
        self.ref = ref
        self.path = path


class PodRunError(MlRepoError):
    """A task's Kubernetes pod could not run to completion: the message names the pod, image, Secret
    or namespace at fault, and says that the target branch is untouched."""

    def __init__(self, message: str, *, namespace: str | None = None, pod: str | None = None) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.pod = pod


class PodPlanMissingError(PodRunError):
    """A deferred task resumed but its pod (and the pins recorded on it) is gone."""


_STATUS_TO_ERROR: dict[int, type[LakeFSError]] = {
    400: LakeFSBadInputError,
    401: LakeFSAuthError,
    403: LakeFSAuthError,
    404: LakeFSNotFoundError,
    409: LakeFSConflictError,
    412: LakeFSPreconditionFailedError,
    416: LakeFSBadInputError,
    422: LakeFSBadInputError,
}


class LakeFSHTTPAnswerError(Exception):
    """A non-2xx lakeFS answer read without the lakeFS SDK (raw streaming, the async hook).

    Not an :class:`MlRepoError`: it never leaves the hooks, which hand it to
    :func:`translate_lakefs_error` (it carries ``status`` and ``body`` for that).
    """

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def is_lakefs_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from talking to lakeFS (as opposed to a bug in our own code).

    Covers the lakeFS SDK's errors, urllib3's (the SDK's and the raw transfers' HTTP stack),
    httpx's (the async hook's), raw non-2xx answers and plain network errors.
    """
    import httpx
    from lakefs_sdk.exceptions import OpenApiException
    from urllib3.exceptions import HTTPError as Urllib3HTTPError

    return isinstance(
        exc,
        OpenApiException | Urllib3HTTPError | httpx.HTTPError | LakeFSHTTPAnswerError | ConnectionError | TimeoutError,
    )


def error_class_for_status(status: int | None) -> type[LakeFSError]:
    """The typed error class for a lakeFS HTTP status."""
    if status is None or status >= 500:
        return LakeFSUnavailableError
    return _STATUS_TO_ERROR.get(status, LakeFSError)


def describe_target(repository: str | None, ref: str | None, path: str | None) -> str:
    """Human description of the lakeFS object an operation was about."""
    if repository and ref and path is not None:
        return f"lakefs://{repository}/{ref}/{path}"
    parts = []
    if repository:
        parts.append(f"repository '{repository}'")
    if ref:
        parts.append(f"ref '{ref}'")
    if path:
        parts.append(f"path '{path}'")
    return ", ".join(parts) if parts else "lakeFS"


def _server_message(body: Any) -> str | None:
    if body is None:
        return None
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    text = str(body).strip()
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"])
    return text[:500]


_STATUS_HINTS: dict[type[LakeFSError], str] = {
    LakeFSNotFoundError: "not found",
    LakeFSAuthError: "access denied",
    LakeFSConflictError: "conflict",
    LakeFSPreconditionFailedError: "precondition failed",
    LakeFSBadInputError: "rejected as invalid",
    LakeFSUnavailableError: "lakeFS unavailable",
}


def translate_lakefs_error(
    exc: BaseException,
    *,
    action: str,
    repository: str | None = None,
    ref: str | None = None,
    path: str | None = None,
    endpoint: str | None = None,
    conn_id: str | None = None,
) -> LakeFSError:
    """Translate any exception raised while talking to lakeFS into a typed :class:`LakeFSError`.

    The single place where lakeFS SDK errors, raw HTTP answers and network errors become ours.
    Use as ``raise translate_lakefs_error(exc, ...) from exc``.
    """
    if isinstance(exc, LakeFSError):
        return exc
    status: int | None = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if body is None:
        body = getattr(exc, "data", None)
    target = describe_target(repository, ref, path)
    if status is None:
        # No HTTP answer at all: connection refused, DNS failure, timeout, TLS error...
        where = f" at {endpoint}" if endpoint else ""
        reason = type(exc).__name__
        detail = str(exc).splitlines()[0][:300] if str(exc) else reason
        return LakeFSUnavailableError(
            f"lakeFS{where} is unreachable while trying to {action} ({target}): {detail}",
            repository=repository,
            ref=ref,
            path=path,
        )
    cls = error_class_for_status(status)
    server_message = _server_message(body)
    hint = _STATUS_HINTS.get(cls, "failed")
    message = f"Cannot {action} ({target}): {hint} (HTTP {status})"
    if server_message:
        message += f": {server_message}"
    if cls is LakeFSAuthError and conn_id:
        message += f". Check the credentials of Airflow connection '{conn_id}'"
    return cls(
        message,
        repository=repository,
        ref=ref,
        path=path,
        status=status,
        server_message=server_message,
    )
