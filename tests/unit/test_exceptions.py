from __future__ import annotations

import pytest
import urllib3
from lakefs_sdk.exceptions import ApiException

from airflow_mlrepo.exceptions import (
    LakeFSAuthError,
    LakeFSBadInputError,
    LakeFSConflictError,
    LakeFSError,
    LakeFSNotFoundError,
    LakeFSPreconditionFailedError,
    LakeFSUnavailableError,
    MlRepoError,
    translate_lakefs_error,
)


def _api_error(status: int, body: str = '{"message": "boom"}') -> ApiException:
    exc = ApiException(status=status, reason="x")
    exc.body = body
    return exc


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, LakeFSBadInputError),
        (401, LakeFSAuthError),
        (403, LakeFSAuthError),
        (404, LakeFSNotFoundError),
        (409, LakeFSConflictError),
        (412, LakeFSPreconditionFailedError),
        (422, LakeFSBadInputError),
        (500, LakeFSUnavailableError),
        (503, LakeFSUnavailableError),
        (418, LakeFSError),
    ],
)
def test_status_maps_to_typed_error(status: int, cls: type[LakeFSError]) -> None:
    err = translate_lakefs_error(_api_error(status), action="read branch", repository="repo-a", ref="dev")
    assert type(err) is cls
    assert isinstance(err, MlRepoError)
    assert err.status == status
    assert "repo-a" in str(err)
    assert "dev" in str(err)
    assert f"HTTP {status}" in str(err)
    assert "boom" in str(err)
    assert err.server_message == "boom"


def test_full_location_is_named_as_uri() -> None:
    err = translate_lakefs_error(_api_error(404, ""), action="stat object", repository="r1x", ref="main", path="a/b")
    assert "lakefs://r1x/main/a/b" in str(err)
    assert err.server_message is None


def test_auth_error_names_connection_not_secret() -> None:
    err = translate_lakefs_error(_api_error(401), action="commit", repository="r1x", conn_id="lakefs_prod")
    assert "lakefs_prod" in str(err)


def test_network_error_is_unavailable_and_names_endpoint() -> None:
    cause = urllib3.exceptions.MaxRetryError(None, "/api/v1/x", reason=ConnectionRefusedError(111, "refused"))  # type: ignore[arg-type]
    err = translate_lakefs_error(cause, action="read branch", repository="r1x", endpoint="http://lakefs:8000")
    assert isinstance(err, LakeFSUnavailableError)
    assert err.status is None
    assert "http://lakefs:8000" in str(err)
    assert "unreachable" in str(err)


def test_translating_our_own_error_is_identity() -> None:
    ours = LakeFSConflictError("x")
    assert translate_lakefs_error(ours, action="merge") is ours
