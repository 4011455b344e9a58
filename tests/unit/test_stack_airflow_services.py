"""The stack's optional ``airflow`` component: configuration, health parsing, and `up()` defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlrepo_devstack import stack
from mlrepo_devstack.stack import _with_dependencies, airflow_services
from mlrepo_devstack.stack.state import StackSettings, load_or_create_secrets


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings.from_environ(
        {
            "MLREPO_HOME": str(tmp_path / "state"),
            "MLREPO_AIRFLOW_PORT": "8181",
            "MLREPO_DAGS_FOLDER": str(tmp_path / "dags"),
        }
    )


def test_default_up_keeps_the_existing_components_and_airflow_is_opt_in() -> None:
    assert _with_dependencies(None) == ["postgres", "lakefs", "marquez", "airflow-db"]
    assert stack.AIRFLOW in stack.COMPONENTS
    assert stack.AIRFLOW not in stack.DEFAULT_COMPONENTS
    assert _with_dependencies(["airflow"]) == ["postgres", "airflow-db", "airflow"]
    assert _with_dependencies(["lakefs", "airflow"]) == ["postgres", "lakefs", "airflow-db", "airflow"]


def test_settings_read_port_and_dags_folder(settings: StackSettings, tmp_path: Path) -> None:
    assert settings.airflow_port == 8181
    assert airflow_services.dags_folder(settings) == tmp_path / "dags"
    assert airflow_services.api_endpoint(settings) == "http://127.0.0.1:8181"
    default = StackSettings.from_environ({"MLREPO_HOME": str(tmp_path / "x")})
    assert default.airflow_port == 8080
    assert airflow_services.dags_folder(default) == tmp_path / "x" / "airflow" / "dags"


def test_environment_configures_a_local_executor_airflow_without_login(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", "/somewhere/else")
    monkeypatch.setenv("AIRFLOW_HOME", "/another/home")
    secrets = load_or_create_secrets(settings)
    env = airflow_services.environment(settings, secrets)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(settings.dags_folder)
    assert env["AIRFLOW_HOME"] == str(settings.state_dir / "airflow")
    assert env["AIRFLOW__API__PORT"] == "8181"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8181/execution/"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__MLREPO__WEBHOOK_SECRET"] == secrets["MLREPO_WEBHOOK_SECRET"]
    assert env["AIRFLOW__MLREPO__RUNNER"] == "local"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["AIRFLOW_JWT_SECRET"]
    assert len(secrets["AIRFLOW_FERNET_KEY"]) == 44


def test_unhealthy_components() -> None:
    healthy = {name: {"status": "healthy"} for name in airflow_services.HEALTH_COMPONENTS}
    assert airflow_services.unhealthy_components(healthy) == []
    assert airflow_services.unhealthy_components({**healthy, "triggerer": {"status": None}}) == ["triggerer"]
    assert airflow_services.unhealthy_components(None) == list(airflow_services.HEALTH_COMPONENTS)


def test_status_of_a_never_started_airflow_is_stopped(settings: StackSettings) -> None:
    assert airflow_services.status(settings).state == "stopped"
