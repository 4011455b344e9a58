"""Marquez launcher pieces that need no service: POM, config, Maven error handling."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import TYPE_CHECKING

import pytest
import yaml
from mlrepo_devstack.stack import marquez
from mlrepo_devstack.stack.state import StackSettings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.unit

MAVEN_OUTPUT = (
    "\x1b[0m\x1b[0m[ERROR] Failed to execute goal on project marquez-classpath: Could not resolve "
    "dependencies for project local.airflow-mlrepo:marquez-classpath:pom:0.50.0: Could not find artifact "
    "io.github.marquezproject:marquez-api:jar:0.50.0 in central (https://repo.maven.apache.org/maven2) "
    "-> [Help 1]\n[ERROR] \n[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.\n"
)


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings.from_environ(
        {"HOME": str(tmp_path), "MLREPO_HOME": str(tmp_path / "state"), "MLREPO_CACHE_DIR": str(tmp_path / "cache")}
    )


@pytest.fixture(autouse=True)
def _forget_failed_resolutions() -> Iterator[None]:
    marquez._failed_resolutions.clear()
    yield
    marquez._failed_resolutions.clear()


def test_classpath_pom_depends_on_marquez_api_with_dropwizard_bom() -> None:
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ElementTree.fromstring(marquez.classpath_pom("0.51.1"))
    dependency = root.find("m:dependencies/m:dependency", namespace)
    assert dependency is not None
    assert dependency.findtext("m:groupId", namespaces=namespace) == "io.github.marquezproject"
    assert dependency.findtext("m:artifactId", namespaces=namespace) == "marquez-api"
    assert dependency.findtext("m:version", namespaces=namespace) == "0.51.1"
    bom = root.find("m:dependencyManagement/m:dependencies/m:dependency", namespace)
    assert bom is not None
    assert bom.findtext("m:artifactId", namespaces=namespace) == "dropwizard-dependencies"
    assert bom.findtext("m:scope", namespaces=namespace) == "import"


def test_config_binds_localhost_disables_search_and_points_at_the_marquez_db(settings: StackSettings) -> None:
    config = yaml.safe_load(marquez.config_yaml(settings))
    application = config["server"]["applicationConnectors"][0]
    admin = config["server"]["adminConnectors"][0]
    assert (application["bindHost"], application["port"]) == ("127.0.0.1", 5000)
    assert application["httpCompliance"] == "RFC7230_LEGACY"
    assert (admin["bindHost"], admin["port"]) == ("127.0.0.1", 5001)
    assert config["search"] == {"enabled": False}
    assert config["db"]["url"] == "jdbc:postgresql://127.0.0.1:5433/marquez"
    assert config["db"]["user"] == "marquez"
    assert config["db"]["password"] == "${MARQUEZ_DB_PASSWORD}"  # substituted by Marquez, not stored


def test_maven_error_line_is_the_first_error_exactly() -> None:
    line = marquez._maven_error_line(MAVEN_OUTPUT)
    assert line.startswith("[ERROR] Failed to execute goal on project marquez-classpath")
    assert line.endswith("-> [Help 1]")
    assert "\x1b" not in line


def test_unresolvable_marquez_is_tried_once_per_version_per_run(settings: StackSettings, tmp_path: Path) -> None:
    calls = tmp_path / "mvn-calls"
    fake_mvn = tmp_path / "mvn"
    fake_mvn.write_text(f"#!/bin/sh\necho call >> {calls}\nprintf '%s' '{MAVEN_OUTPUT}'\nexit 1\n", encoding="utf-8")
    fake_mvn.chmod(0o755)
    for _ in range(2):
        with pytest.raises(marquez.MarquezUnavailableError) as raised:
            marquez.resolve_classpath(settings, str(fake_mvn))
        message = str(raised.value)
        assert "tried 0.51.1, 0.51.0, 0.50.0" in message
        assert "Could not find artifact io.github.marquezproject:marquez-api:jar:0.50.0" in message
    assert calls.read_text(encoding="utf-8").count("call") == len(marquez.MARQUEZ_VERSIONS)


def test_unavailability_is_recorded_and_cleared(settings: StackSettings) -> None:
    marquez._record_unavailability(settings, "no artifact")
    assert marquez.recorded_unavailability(settings) == "no artifact"
    assert marquez.status(settings).state == "unavailable"
    marquez._record_unavailability(settings, None)
    assert marquez.recorded_unavailability(settings) is None
    assert marquez.status(settings).state == "stopped"
