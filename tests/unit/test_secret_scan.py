"""The secret scan that ends the e2e and fault runs finds a secret in each form it can take, and says
where without repeating the value."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.secret_scan import SCANNED_SECRETS, SecretScan

SECRET = "s3cr3t/With+Odd=Chars%and:more"


@pytest.fixture
def scan() -> SecretScan:
    return SecretScan.of_stack({"LAKEFS_SECRET_ACCESS_KEY": SECRET, "LAKEFS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"})


@pytest.mark.parametrize(
    "written",
    [
        SECRET,
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
    ],
    ids=["raw", "url-quoted", "form-quoted", "base64"],
)
def test_a_secret_in_a_log_file_is_found_in_each_form(scan: SecretScan, tmp_path: Path, written: str) -> None:
    (tmp_path / "logs" / "dag_id=x").mkdir(parents=True)
    (tmp_path / "logs" / "dag_id=x" / "attempt=1.log").write_text(f"connecting with {written} now\n")
    (tmp_path / "logs" / "clean.log").write_text("nothing to see\n")
    scan.files("task log", [tmp_path])
    assert [hit.secret for hit in scan.hits] == ["LAKEFS_SECRET_ACCESS_KEY"]
    assert scan.hits[0].where.endswith("attempt=1.log")
    assert SECRET not in scan.report()
    assert written not in scan.report()
    assert scan.scanned == {"task log": 2}


def test_configuration_files_and_the_access_key_id_are_not_findings(scan: SecretScan, tmp_path: Path) -> None:
    (tmp_path / "airflow.cfg").write_text(f"secret = {SECRET}\n")
    (tmp_path / "task.log").write_text("access key AKIAIOSFODNN7EXAMPLE\n")
    scan.files("airflow home", [tmp_path])
    assert scan.hits == []
    assert "0 hits" in scan.report()


@dataclass
class _Commit:
    id: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class _Hook:
    branches: dict[str, list[_Commit]]

    def list_branches(self, repository: str) -> list[str]:
        return list(self.branches)

    def log_commits(self, repository: str, branch: str) -> Iterator[_Commit]:
        yield from self.branches[branch]


def test_commit_metadata_is_scanned_once_per_commit(scan: SecretScan) -> None:
    shared = _Commit("a" * 64, "add data")
    leaking = _Commit("b" * 64, "train", {"mlrepo.env": f"LAKEFS_SECRET_ACCESS_KEY={SECRET}"})
    scan.commits(_Hook({"main": [leaking, shared], "dev": [shared]}), "models")
    assert [str(hit) for hit in scan.hits] == [f"LAKEFS_SECRET_ACCESS_KEY in lakefs://models@{'b' * 12} (metadata)"]
    assert scan.scanned == {"commit": 2}


def test_every_scanned_secret_of_the_stack_is_looked_for() -> None:
    values = {name: f"{name.lower()}-value-0123456789" for name in SCANNED_SECRETS}
    scan = SecretScan.of_stack(values)
    for name, value in values.items():
        scan.text("rendered task fields", name, f'{{"env": "{value}"}}')
    assert sorted(hit.secret for hit in scan.hits) == sorted(SCANNED_SECRETS)
