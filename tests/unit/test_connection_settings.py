from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from airflow_mlrepo.exceptions import LakeFSConnectionConfigError
from airflow_mlrepo.hooks.lakefs import LakeFSConnectionSettings


def _conn(**kwargs: object) -> Connection:
    base: dict[str, object] = {
        "conn_id": "lakefs_default",
        "conn_type": "lakefs",
        "login": "AKIA",
        "password": "s3cr3t",
    }
    base.update(kwargs)
    return Connection(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "endpoint"),
    [
        ({"host": "http://lakefs:8000"}, "http://lakefs:8000"),
        ({"host": "https://lakefs.example.com/"}, "https://lakefs.example.com"),
        ({"host": "http://lakefs:8000/api/v1"}, "http://lakefs:8000"),
        ({"host": "lakefs", "port": 8000}, "http://lakefs:8000"),
        ({"host": "lakefs", "port": 443, "schema": "https"}, "https://lakefs:443"),
        ({"host": "http://lakefs", "port": 8001}, "http://lakefs:8001"),
    ],
)
def test_endpoint_forms(fields: dict[str, object], endpoint: str) -> None:
    settings = LakeFSConnectionSettings.from_connection(_conn(**fields))
    assert settings.endpoint == endpoint
    assert settings.api_url == endpoint + "/api/v1"
    assert settings.access_key_id == "AKIA"


def test_extras_plain_and_legacy_prefixed() -> None:
    plain = LakeFSConnectionSettings.from_connection(
        _conn(
            host="http://l:1",
            extra=json.dumps({"verify_ssl": False, "request_timeout": "5", "ui_url": "http://ui/"}),
        )
    )
    assert (plain.verify_ssl, plain.request_timeout, plain.browser_url) == (False, 5.0, "http://ui")
    legacy = LakeFSConnectionSettings.from_connection(
        _conn(host="http://l:1", extra=json.dumps({"extra__lakefs__verify_ssl": "false"}))
    )
    assert legacy.verify_ssl is False
    assert LakeFSConnectionSettings.from_connection(_conn(host="http://l:1")).browser_url == "http://l:1"


def test_secret_is_not_in_repr() -> None:
    settings = LakeFSConnectionSettings.from_connection(_conn(host="http://l:1"))
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"host": None}, "no lakeFS endpoint"),
        ({"host": "lakefs", "schema": "ftp"}, "schema must be 'http' or 'https'"),
        ({"host": "ftp://lakefs"}, "not an http(s) URL"),
        ({"host": "http://l:1", "login": None}, "access key id"),
        ({"host": "http://l:1", "password": ""}, "secret access key"),
        ({"host": "http://l:1", "extra": '{"request_timeout": "soon"}'}, "request_timeout"),
    ],
)
def test_incomplete_connections_name_the_connection(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(LakeFSConnectionConfigError) as err:
        LakeFSConnectionSettings.from_connection(_conn(conn_id="my_lakefs", **fields))
    assert fragment in str(err.value)
    assert "my_lakefs" in str(err.value)
