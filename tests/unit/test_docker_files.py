"""The user-facing Docker files, checked as far as possible without a Docker engine (none runs here).

* ``docker/compose/compose.yaml`` is loaded by compose-go, the library ``docker compose`` itself uses
  (schema validation, interpolation from ``.env.example``, merge keys, cross-references), through the
  small Go program in ``docker/compose/check``; the normalized project is then checked for the
  wiring: lakeFS → Airflow webhook secret, Airflow → Marquez lineage, Airflow → lakeFS connection.
* ``docker/airflow/Dockerfile``: every ``COPY`` source exists in the build context (the repository
  root) and the image's own verification step passes with the same packages in this environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose" / "compose.yaml"
ENV_EXAMPLE = ROOT / "docker" / "compose" / ".env.example"
AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


@pytest.fixture(scope="module")
def compose_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert Path(go).exists(), "Go is needed (it also builds lakeFS for the local stack)"
    binary = tmp_path_factory.mktemp("compose-check") / "compose-check"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=ROOT / "docker" / "compose" / "check",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


def _load(binary: Path, compose: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LAKEFS", "MLREPO", "POSTGRES"))}
    return subprocess.run(
        [str(binary), str(compose), str(env_file)], capture_output=True, text=True, timeout=120, check=False, env=env
    )


@pytest.fixture(scope="module")
def project(compose_check: Path) -> dict[str, Any]:
    loaded = _load(compose_check, COMPOSE, ENV_EXAMPLE)
    assert loaded.returncode == 0, loaded.stderr
    return json.loads(loaded.stdout)  # type: ignore[no-any-return]


def _env_example() -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )


def test_compose_file_has_the_whole_stack(project: dict[str, Any]) -> None:
    assert set(project["services"]) == {
        "postgres",
        "lakefs",
        "marquez-api",
        "marquez-web",
        "airflow-init",
        *AIRFLOW_SERVICES,
    }
    images = {name: service.get("image") for name, service in project["services"].items()}
    assert {images[name] for name in (*AIRFLOW_SERVICES, "airflow-init")} == {"airflow-mlrepo:0.1.0"}
    assert images["lakefs"] == "treeverse/lakefs:1.86.0"
    build = project["services"]["airflow-scheduler"]["build"]
    assert Path(build["context"]) == ROOT
    assert build["dockerfile"] == "docker/airflow/Dockerfile"


def test_compose_wires_webhook_lineage_and_connection(project: dict[str, Any]) -> None:
    secrets = _env_example()
    services = project["services"]
    lakefs_env = services["lakefs"]["environment"]
    assert lakefs_env["LAKEFSACTION_MLREPO_WEBHOOK_SECRET"] == secrets["MLREPO_WEBHOOK_SECRET"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__MLREPO__WEBHOOK_SECRET"] == secrets["MLREPO_WEBHOOK_SECRET"]
        connection = json.loads(env["AIRFLOW_CONN_LAKEFS_DEFAULT"])
        assert connection["host"] == "http://lakefs:8000"
        assert connection["login"] == lakefs_env["LAKEFS_INSTALLATION_ACCESS_KEY_ID"]
        assert connection["password"] == lakefs_env["LAKEFS_INSTALLATION_SECRET_ACCESS_KEY"]
        transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
        assert transport["type"] == "airflow_mlrepo.lineage.outbox.OutboxTransport"
        assert (
            transport["http"]["url"] == f"http://marquez-api:{services['marquez-api']['environment']['MARQUEZ_PORT']}"
        )
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-api-server:8080/")
        assert "airflow-init" in services[name]["depends_on"]
    assert services["marquez-web"]["environment"]["MARQUEZ_HOST"] == "marquez-api"
    airflow_db = services["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert airflow_db.endswith(f":{secrets['AIRFLOW_DB_PASSWORD']}@postgres:5432/airflow")


def test_the_receiver_url_of_the_example_action_exists_in_the_compose_network(project: dict[str, Any]) -> None:
    ports = project["services"]["airflow-api-server"]["ports"]
    assert [p["target"] for p in ports] == [8080]
    action = (ROOT / "docs" / "examples" / "_lakefs_actions" / "airflow-mlrepo.yaml").read_text()
    assert "/mlrepo/lakefs/events" in action
    assert "{{ ENV.LAKEFSACTION_MLREPO_WEBHOOK_SECRET }}" in action


def test_compose_checker_rejects_what_docker_compose_rejects(compose_check: Path, tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    unknown_key = tmp_path / "unknown-key.yaml"
    unknown_key.write_text(text.replace("  marquez-web:\n", "  marquez-web:\n    colour: blue\n", 1))
    broken_reference = tmp_path / "broken-reference.yaml"
    broken_reference.write_text(text.replace("      - marquez-api\n", "      - marquez-apii\n", 1))
    shutil.copy(ROOT / "docker" / "compose" / "init-databases.sql", tmp_path)
    for broken, why in ((unknown_key, "services.marquez-web.colour"), (broken_reference, '"marquez-apii"')):
        result = _load(compose_check, broken, ENV_EXAMPLE)
        assert result.returncode == 1, broken.name
        assert "invalid compose file" in result.stderr
        assert why in result.stderr
    no_secrets = tmp_path / "empty.env"
    no_secrets.write_text("")
    result = _load(compose_check, COMPOSE, no_secrets)
    assert result.returncode == 1
    assert "set it in docker/compose/.env" in result.stderr


def test_airflow_dockerfile_copies_existing_files_and_its_check_passes_here() -> None:
    dockerfile = (ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    sources = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY")
        for source in line.split()[1:-1]
        if not source.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} is missing from the build context"
    check = re.search(r'python -c "([^"]+)"', dockerfile)
    assert check is not None
    imported = subprocess.run([sys.executable, "-c", check.group(1)], capture_output=True, text=True, check=False)
    assert imported.returncode == 0, imported.stderr
    providers = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "providers", "list"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert providers.returncode == 0, providers.stderr
    assert "airflow-mlrepo" in providers.stdout
