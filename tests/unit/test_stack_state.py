"""stack.env / secrets.env reading and writing, settings from the environment (no services)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from typing import TYPE_CHECKING

import pytest
from mlrepo_devstack import stack
from mlrepo_devstack.stack.state import (
    StackSettings,
    load_or_create_secrets,
    parse_env_text,
    read_env_file,
    write_env_file,
)
from mlrepo_devstack.stack.status import ComponentStatus, StackStatus

from airflow_mlrepo.cli import main as cli_main
from airflow_mlrepo.exceptions import StackError, StackNotUpError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

TRICKY_VALUES = {
    "PLAIN": "http://127.0.0.1:8000",
    "EMPTY": "",
    "SPACES": "unavailable: Could not find artifact io.github.marquezproject:marquez-api:jar:0.50.0",
    "JSON": json.dumps({"conn_type": "lakefs", "host": "http://127.0.0.1:8000", "login": "A", "password": "p"}),
    "QUOTES": "it's \"quoted\" and 'single'",
    "SHELL": "$HOME `id` $(id) \\ ; & | > <",
    "EQUALS": "a=b=c",
    "HASH": "#not-a-comment",
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings.from_environ({"HOME": str(tmp_path), "MLREPO_HOME": str(tmp_path / "state")})


def test_env_file_round_trips_every_value(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    write_env_file(path, TRICKY_VALUES, header="test header\nsecond line")
    assert read_env_file(path) == TRICKY_VALUES


def test_env_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    write_env_file(path, {"KEY": "value"})
    assert _mode(path) == 0o600


def test_rewriting_a_loose_env_file_tightens_it_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    path.write_text("OLD=1\n", encoding="utf-8")
    path.chmod(0o644)
    write_env_file(path, {"NEW": "2"})
    assert _mode(path) == 0o600
    assert read_env_file(path) == {"NEW": "2"}


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_env_file(tmp_path / "stack.env", {"A": "1"})
    write_env_file(tmp_path / "stack.env", {"A": "2"})
    assert [p.name for p in tmp_path.iterdir()] == ["stack.env"]


def test_parse_skips_comments_and_blank_lines_and_accepts_export() -> None:
    text = "# comment\n\nexport A=1\nB='two words'\n  C = \"x\"  \n"
    assert parse_env_text(text) == {"A": "1", "B": "two words", "C": "x"}


def test_parse_rejects_lines_that_are_not_assignments() -> None:
    with pytest.raises(StackError, match="line 2"):
        parse_env_text("A=1\nnot an assignment\n")


def test_values_with_line_breaks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        write_env_file(tmp_path / "stack.env", {"A": "one\ntwo"})


def test_secrets_are_generated_once_with_the_expected_shapes(settings: StackSettings) -> None:
    first = load_or_create_secrets(settings)
    second = load_or_create_secrets(settings)
    assert first == second
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", first["LAKEFS_ACCESS_KEY_ID"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", first["LAKEFS_SECRET_ACCESS_KEY"])
    assert first["LAKEFS_ACCESS_KEY_ID"] != "AKIAIOSFOLQUICKSTART"
    assert first["POSTGRES_AIRFLOW_PASSWORD"] != first["POSTGRES_MARQUEZ_PASSWORD"]
    assert _mode(settings.secrets_env_path) == 0o600


def test_a_missing_secret_is_added_without_touching_the_others(settings: StackSettings) -> None:
    original = load_or_create_secrets(settings)
    kept = {key: value for key, value in original.items() if key != "POSTGRES_MARQUEZ_PASSWORD"}
    write_env_file(settings.secrets_env_path, kept)
    refilled = load_or_create_secrets(settings)
    assert {key: refilled[key] for key in kept} == kept
    assert refilled["POSTGRES_MARQUEZ_PASSWORD"]


def test_settings_defaults(tmp_path: Path) -> None:
    settings = StackSettings.from_environ({"HOME": str(tmp_path)})
    assert settings.state_dir == tmp_path / ".local" / "share" / "airflow-mlrepo"
    assert settings.cache_dir == tmp_path / ".cache" / "airflow-mlrepo"
    assert (settings.lakefs_port, settings.postgres_port) == (8000, 5433)
    assert (settings.marquez_port, settings.marquez_admin_port) == (5000, 5001)
    assert settings.stack_env_path == settings.state_dir / "stack.env"


def test_settings_overrides(tmp_path: Path) -> None:
    settings = StackSettings.from_environ(
        {
            "MLREPO_HOME": str(tmp_path / "s"),
            "MLREPO_CACHE_DIR": str(tmp_path / "c"),
            "MLREPO_LAKEFS_PORT": "18000",
            "MLREPO_POSTGRES_PORT": "15433",
            "MLREPO_MARQUEZ_PORT": "15000",
            "MLREPO_MARQUEZ_ADMIN_PORT": "15001",
            "MLREPO_POSTGRES_CLUSTER": "mlrepo_ci",
        }
    )
    assert settings.state_dir == tmp_path / "s"
    assert settings.cache_dir == tmp_path / "c"
    assert settings.lakefs_port == 18000
    assert settings.postgres_port == 15433
    assert (settings.marquez_port, settings.marquez_admin_port) == (15000, 15001)
    assert settings.postgres_cluster == "mlrepo_ci"


@pytest.mark.parametrize("port", ["eighty", "0", "70000"])
def test_bad_ports_are_refused(port: str) -> None:
    with pytest.raises(StackError, match="MLREPO_LAKEFS_PORT"):
        StackSettings.from_environ({"HOME": "/nonexistent", "MLREPO_LAKEFS_PORT": port})


def _status_with_marquez(marquez: ComponentStatus, settings: StackSettings) -> StackStatus:
    components = {
        "postgres": ComponentStatus("postgres", "running", pid=1),
        "lakefs": ComponentStatus("lakefs", "running", pid=2, version="v1.86.0"),
        "marquez": marquez,
        "airflow-db": ComponentStatus("airflow-db", "ready"),
    }
    return StackStatus(components=components, env_file=settings.stack_env_path)


def test_stack_env_values_describe_the_stack(settings: StackSettings) -> None:
    secrets = load_or_create_secrets(settings)
    reason = "Could not find artifact io.github.marquezproject:marquez-api:jar:0.50.0"
    current = _status_with_marquez(ComponentStatus("marquez", "unavailable", detail=reason), settings)
    values = stack.stack_env_values(settings, secrets, current)
    assert values["LAKEFS_ENDPOINT"] == "http://127.0.0.1:8000"
    assert values["LAKEFS_VERSION"] == "v1.86.0"
    assert values["POSTGRES_PORT"] == "5433"
    assert values["MARQUEZ_STATUS"] == f"unavailable: {reason}"
    assert "MARQUEZ_URL" not in values
    assert values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://airflow:{secrets['POSTGRES_AIRFLOW_PASSWORD']}@127.0.0.1:5433/airflow"
    )
    assert json.loads(values["AIRFLOW_CONN_LAKEFS_DEFAULT"]) == {
        "conn_type": "lakefs",
        "host": "http://127.0.0.1:8000",
        "login": secrets["LAKEFS_ACCESS_KEY_ID"],
        "password": secrets["LAKEFS_SECRET_ACCESS_KEY"],
    }


def test_stack_env_values_name_marquez_urls_when_it_runs(settings: StackSettings) -> None:
    secrets = load_or_create_secrets(settings)
    current = _status_with_marquez(ComponentStatus("marquez", "running", pid=3), settings)
    values = stack.stack_env_values(settings, secrets, current)
    assert values["MARQUEZ_STATUS"] == "running"
    assert values["MARQUEZ_URL"] == "http://127.0.0.1:5000"
    assert values["MARQUEZ_ADMIN_URL"] == "http://127.0.0.1:5001"


def test_read_env_without_stack_env_says_to_run_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREPO_HOME", str(tmp_path / "nothing-here"))
    with pytest.raises(StackNotUpError, match="mlrepo stack up"):
        stack.read_env()


def test_cli_env_output_evaluates_to_the_same_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLREPO_HOME", str(tmp_path))
    write_env_file(tmp_path / "stack.env", TRICKY_VALUES)
    assert stack.read_env() == TRICKY_VALUES
    assert cli_main(["stack", "env"]) == 0
    exports = capsys.readouterr().out
    printed = subprocess.run(
        ["bash", "-c", exports + 'for k in "$@"; do printf "%s=%s\\0" "$k" "${!k}"; done', "_", *TRICKY_VALUES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    evaluated = dict(item.split("=", 1) for item in printed.split("\0") if item)
    assert evaluated == TRICKY_VALUES


def test_a_lakefs_stop_leaves_the_cluster_running_and_a_postgres_stop_takes_its_dependents() -> None:
    """The lakeFS outage tests stop lakeFS; the cluster (which only forwards to lakeFS's port) stays up."""
    from mlrepo_devstack import stack

    assert stack.components_to_stop(["lakefs"]) == {"lakefs"}
    assert stack.components_to_stop(["postgres"]) == {"postgres", "marquez", "airflow-db", "airflow"}
    assert stack.components_to_stop(["kubernetes"]) == {"kubernetes"}
    assert stack.components_to_stop(None) == set(stack.COMPONENTS)
