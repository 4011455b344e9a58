"""The local stack against the real services: lakeFS, PostgreSQL 15, Marquez, Airflow's DB.

``stack.up()`` here starts whatever is not running yet (building lakeFS the first time) and
leaves it running for the rest of the session and for later runs.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import psycopg2  # type: ignore[import-untyped]
import pytest
from lakefs_sdk.api.auth_api import AuthApi
from lakefs_sdk.api.config_api import ConfigApi
from lakefs_sdk.api_client import ApiClient
from lakefs_sdk.configuration import Configuration
from mlrepo_devstack import stack
from mlrepo_devstack.stack.lakefs import LAKEFS_VERSION

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def first_up() -> stack.StackStatus:
    return stack.up()


@pytest.fixture(scope="module")
def stack_env(first_up: stack.StackStatus) -> dict[str, str]:
    return stack.read_env()


def _connect(database: str, password: str, env: dict[str, str]) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=env["POSTGRES_HOST"], port=int(env["POSTGRES_PORT"]), dbname=database, user=database, password=password
    )


def test_lakefs_answers_with_the_pinned_version(stack_env: dict[str, str]) -> None:
    configuration = Configuration(
        host=stack_env["LAKEFS_ENDPOINT"] + "/api/v1",
        username=stack_env["LAKEFS_ACCESS_KEY_ID"],
        password=stack_env["LAKEFS_SECRET_ACCESS_KEY"],
    )
    with ApiClient(configuration) as client:
        version_config = ConfigApi(client).get_config().version_config
        assert version_config is not None
        version = version_config.version
        user = AuthApi(client).get_current_user().user.id
    print(f"lakeFS at {stack_env['LAKEFS_ENDPOINT']} reports version {version}, user {user}")
    assert version == LAKEFS_VERSION == stack_env["LAKEFS_VERSION"]
    assert user == "admin"


def test_airflow_connection_url_in_stack_env_works(stack_env: dict[str, str]) -> None:
    url = urlsplit(stack_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert url.scheme == "postgresql+psycopg2"
    assert (url.hostname, url.port, url.username) == ("127.0.0.1", int(stack_env["POSTGRES_PORT"]), "airflow")
    connection = _connect("airflow", unquote(url.password or ""), stack_env)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            assert cursor.fetchone() is not None, "airflow db migrate did not run"
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("database", "password_key"),
    [("airflow", "POSTGRES_AIRFLOW_PASSWORD"), ("marquez", "POSTGRES_MARQUEZ_PASSWORD")],
)
def test_database_exists_and_is_owned_by_its_role(stack_env: dict[str, str], database: str, password_key: str) -> None:
    connection = _connect(database, stack_env[password_key], stack_env)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, pg_get_userbyid(datdba), current_setting('server_version_num')::int "
                "FROM pg_database WHERE datname = current_database()"
            )
            row = cursor.fetchone()
            assert row is not None
            current_user, owner, server_version = row
            assert current_user == owner == database
            assert 150000 <= server_version < 160000
            # PostgreSQL 15 grants CREATE on schema public to the database owner only.
            cursor.execute("CREATE TABLE mlrepo_owner_check (id int)")
        connection.rollback()
    finally:
        connection.close()


def test_status_reports_the_stack_running(first_up: stack.StackStatus) -> None:
    current = stack.status()
    for component in current:
        print(component.describe())
    assert current[stack.LAKEFS].state == "running"
    assert current[stack.LAKEFS].endpoint == stack.read_env()["LAKEFS_ENDPOINT"]
    assert current[stack.POSTGRES].state == "running"
    assert current[stack.AIRFLOW_DB].state == "ready"
    assert current.required_up


def test_marquez_is_running_or_reported_unavailable_with_a_reason(
    first_up: stack.StackStatus, stack_env: dict[str, str]
) -> None:
    marquez = stack.status()[stack.MARQUEZ]
    print(f"Marquez: {marquez.state} {marquez.detail}")
    if marquez.state == "running":
        assert stack_env["MARQUEZ_STATUS"] == "running"
        assert stack_env["MARQUEZ_URL"] == marquez.endpoint
    else:
        assert marquez.state == "unavailable"
        assert marquez.detail
        assert stack_env["MARQUEZ_STATUS"] == f"unavailable: {marquez.detail}"
        assert "MARQUEZ_URL" not in stack_env


def test_second_up_reuses_the_running_processes(first_up: stack.StackStatus) -> None:
    second = stack.up()
    for name in (stack.LAKEFS, stack.POSTGRES):
        assert second[name].state == "running"
        assert second[name].pid is not None
        assert second[name].pid == first_up[name].pid, f"{name} was restarted"
    assert "already running" in second[stack.LAKEFS].detail
    assert "already migrated" in second[stack.AIRFLOW_DB].detail
    if first_up[stack.MARQUEZ].state == "running":
        assert second[stack.MARQUEZ].pid == first_up[stack.MARQUEZ].pid
