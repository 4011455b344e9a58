"""An already-running Marquez (``MLREPO_MARQUEZ_URL``): the stack starts none, reports its health,
writes it into ``stack.env`` and points the stack's Airflow and the demo at it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from mlrepo_devstack import demo, stack
from mlrepo_devstack.stack import airflow_services, marquez
from mlrepo_devstack.stack.state import StackSettings, load_or_create_secrets
from mlrepo_devstack.stack.status import ComponentStatus, StackStatus

from airflow_mlrepo.exceptions import StackError
from tests.recorded_marquez import NAMESPACES_ANSWER, RecordedMarquez

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.unit

NAMESPACES = "GET /api/v1/namespaces?limit=1"


@pytest.fixture
def recorded() -> Iterator[RecordedMarquez]:
    server = RecordedMarquez({NAMESPACES: (200, NAMESPACES_ANSWER)})
    yield server
    server.close()


def _settings(tmp_path: Path, **extra: str) -> StackSettings:
    return StackSettings.from_environ({"HOME": str(tmp_path), "MLREPO_HOME": str(tmp_path / "state"), **extra})


def test_an_external_marquez_is_used_not_started(tmp_path: Path, recorded: RecordedMarquez) -> None:
    settings = _settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url + "/")
    assert marquez.is_external(settings)
    assert marquez.endpoint(settings) == recorded.url
    # up() never looks for Java or Maven and starts no process: it only asks the API
    status = marquez.up(settings, {})
    assert (status.state, status.endpoint, status.pid) == ("running", recorded.url, None)
    assert "external" in status.detail
    assert [request.path for request in recorded.requests] == ["/api/v1/namespaces?limit=1"]
    assert not settings.pid_path(stack.MARQUEZ).exists()
    assert not (settings.cache_dir / "marquez").exists()
    assert marquez.status(settings).state == "running"
    assert marquez.down(settings) is False  # nothing of ours to stop; the external one keeps running
    assert marquez.status(settings).state == "running"


def test_the_api_key_is_sent_as_a_bearer_token_and_a_wrong_one_is_named(
    tmp_path: Path, recorded: RecordedMarquez
) -> None:
    recorded.required_bearer = "s3cr3t-key"
    without_key = marquez.status(_settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url))
    assert without_key.state == "unavailable"
    assert "HTTP 401" in without_key.detail
    assert "set MLREPO_MARQUEZ_API_KEY" in without_key.detail
    wrong = marquez.status(_settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url, MLREPO_MARQUEZ_API_KEY="nope"))
    assert "check MLREPO_MARQUEZ_API_KEY" in wrong.detail
    assert "nope" not in wrong.detail
    settings = _settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url, MLREPO_MARQUEZ_API_KEY="s3cr3t-key")
    assert marquez.status(settings).state == "running"
    assert recorded.requests[-1].headers["authorization"] == "Bearer s3cr3t-key"
    assert "s3cr3t-key" not in repr(settings)


def test_an_external_marquez_that_does_not_answer_or_is_not_marquez_is_reported(
    tmp_path: Path, recorded: RecordedMarquez
) -> None:
    recorded.answers[NAMESPACES] = (200, {"hello": "not marquez"})
    wrong = marquez.status(_settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url))
    assert wrong.state == "unavailable"
    assert f"external Marquez at {recorded.url} (MLREPO_MARQUEZ_URL) answered GET /api/v1/namespaces" in wrong.detail
    recorded.close()
    gone = marquez.up(_settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url), {})
    assert gone.state == "unavailable"
    assert gone.detail == f"external Marquez at {recorded.url} (MLREPO_MARQUEZ_URL) does not answer"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("marquez:5000", "is not an http(s) URL"),
        ("ftp://marquez", "is not an http(s) URL"),
        ("http://user:pw@marquez:5000", "put the API key in MLREPO_MARQUEZ_API_KEY"),
        ("http://marquez:5000/?x=1", "without a query"),
    ],
)
def test_a_bad_marquez_url_is_named(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(StackError, match="MLREPO_MARQUEZ_URL") as raised:
        _settings(tmp_path, MLREPO_MARQUEZ_URL=value)
    assert message in str(raised.value)
    assert "pw" not in str(raised.value)


def _status_with(settings: StackSettings, marquez_status: ComponentStatus) -> StackStatus:
    components = {name: ComponentStatus(name, "stopped") for name in stack.COMPONENTS}
    components[stack.MARQUEZ] = marquez_status
    return StackStatus(components=components, env_file=settings.stack_env_path)


def test_stack_env_names_the_external_marquez_and_its_key(tmp_path: Path, recorded: RecordedMarquez) -> None:
    settings = _settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url, MLREPO_MARQUEZ_API_KEY="k3y")
    secrets = load_or_create_secrets(settings)
    values = stack.stack_env_values(settings, secrets, _status_with(settings, marquez.status(settings)))
    assert values["MARQUEZ_URL"] == values["OPENLINEAGE_URL"] == recorded.url
    assert values["MARQUEZ_MANAGED"] == "external"
    assert values["MARQUEZ_API_KEY"] == values["OPENLINEAGE_API_KEY"] == "k3y"
    assert values["MARQUEZ_STATUS"] == "running"
    assert "MARQUEZ_ADMIN_URL" not in values  # not ours: its admin port is not known


def test_the_stacks_airflow_and_the_demo_send_lineage_to_the_external_marquez(
    tmp_path: Path, recorded: RecordedMarquez
) -> None:
    settings = _settings(tmp_path, MLREPO_MARQUEZ_URL=recorded.url, MLREPO_MARQUEZ_API_KEY="k3y")
    target = airflow_services.lineage_target(settings)
    assert target == recorded.url
    env = airflow_services.environment(settings, load_or_create_secrets(settings), target)
    assert env["AIRFLOW__OPENLINEAGE__DISABLED"] == "False"
    assert env["AIRFLOW__MLREPO__MARQUEZ_URL"] == recorded.url
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {
        "type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
        "outbox_dir": str(settings.state_dir / "airflow" / "mlrepo-lineage-outbox"),
        "http": {
            "url": recorded.url,
            "endpoint": "api/v1/lineage",
            "timeout": 5,
            "auth": {"type": "api_key", "apiKey": "k3y"},
        },
    }
    stack_env = {
        "AIRFLOW_CONN_LAKEFS_DEFAULT": "{}",
        "MLREPO_HOME": str(settings.state_dir),
        "LAKEFS_ENDPOINT": "http://127.0.0.1:8000",
        "MARQUEZ_URL": recorded.url,
        "MARQUEZ_API_KEY": "k3y",
    }
    demo_settings = demo.DemoSettings.from_stack(stack_env, home=tmp_path / "demo")
    demo_env = demo.airflow_environment(demo_settings, stack_env, env)
    assert json.loads(demo_env["AIRFLOW__OPENLINEAGE__TRANSPORT"])["http"] == transport["http"]
    assert demo_env["AIRFLOW__MLREPO__MARQUEZ_URL"] == recorded.url


def test_without_a_running_marquez_the_stacks_airflow_keeps_lineage_in_its_outbox(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert airflow_services.lineage_target(settings) is None
    env = airflow_services.lineage_environment(settings, None)
    assert json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"]) == {
        "type": "airflow_mlrepo.lineage.outbox.OutboxTransport",
        "outbox_dir": str(settings.state_dir / "airflow" / "mlrepo-lineage-outbox"),
    }
    assert "AIRFLOW__MLREPO__MARQUEZ_URL" not in env
