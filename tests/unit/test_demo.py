"""`mlrepo demo`'s pieces that need no services: timeline, names, Airflow environment, DAG install."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from mlrepo_devstack import cli as devstack_cli
from mlrepo_devstack import demo

from airflow_mlrepo import cli
from airflow_mlrepo.exceptions import LakeFSConflictError, LakeFSNotFoundError

ROOT = Path(__file__).resolve().parents[2]
STACK_ENV = {
    "MLREPO_HOME": "/state",
    "LAKEFS_ENDPOINT": "http://127.0.0.1:8000",
    "AIRFLOW_CONN_LAKEFS_DEFAULT": json.dumps({"conn_type": "lakefs", "host": "http://127.0.0.1:8000"}),
    "MARQUEZ_STATUS": "unavailable: no artifact",
}


def test_simulated_days_are_the_midnights_before_today() -> None:
    now = datetime(2026, 11, 26, 15, 30, tzinfo=timezone.utc)
    assert demo.simulated_days(now, 3) == [datetime(2026, 11, d, tzinfo=timezone.utc) for d in (23, 24, 25)]


def test_repository_names_follow_the_example_dags_prefix(tmp_path: Path) -> None:
    plain = demo.DemoSettings.from_stack(STACK_ENV, home=tmp_path)
    assert [plain.repository(r) for r in demo.ROLES] == ["iris-train", "iris-input", "iris-models", "iris-predictions"]
    suffixed = demo.DemoSettings.from_stack(STACK_ENV, home=tmp_path, repository_suffix="t1")
    assert suffixed.repository("models") == "iris-t1-models"
    stack_airflow = {
        "AIRFLOW_HOME": "/state/airflow",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:pw@127.0.0.1:5433/airflow",
        "AIRFLOW__MLREPO__RUNNER": "local",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
    }
    env = demo.airflow_environment(suffixed, STACK_ENV, stack_airflow)
    assert env[demo.REPO_PREFIX_VARIABLE] == "iris-t1"
    # the stack's Airflow: its home, its PostgreSQL metadata DB, its runner and import timeout
    for key, value in stack_airflow.items():
        assert env[key] == value
    assert env["AIRFLOW_CONN_LAKEFS_DEFAULT"] == STACK_ENV["AIRFLOW_CONN_LAKEFS_DEFAULT"]


def test_default_home_is_under_the_stack_state(tmp_path: Path) -> None:
    assert demo.DemoSettings.from_stack(STACK_ENV).home == Path("/state/demo")


def test_lineage_is_kept_in_the_outbox_and_delivered_to_marquez_when_it_runs(tmp_path: Path) -> None:
    settings = demo.DemoSettings.from_stack(STACK_ENV, home=tmp_path)
    assert demo.lineage_transport(settings, STACK_ENV) == {
        "type": demo.OUTBOX_TRANSPORT,
        "outbox_dir": str(tmp_path / "lineage" / "outbox"),
    }
    with_marquez = {**STACK_ENV, "MARQUEZ_URL": "http://127.0.0.1:5000"}
    assert demo.lineage_transport(settings, with_marquez)["http"] == {
        "url": "http://127.0.0.1:5000",
        "endpoint": "api/v1/lineage",
        "timeout": 5,
    }
    said = demo.describe_lineage(settings, STACK_ENV)
    assert "Marquez is not running here (unavailable: no artifact): 0 OpenLineage events are kept" in said
    assert "mlrepo lineage replay --outbox" in said


def test_without_the_outbox_module_lineage_goes_to_a_file_or_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "outbox_transport_available", lambda: False)
    settings = demo.DemoSettings.from_stack(STACK_ENV, home=tmp_path)
    assert demo.lineage_transport(settings, STACK_ENV) == {
        "type": "file",
        "log_file_path": str(tmp_path / "lineage" / "openlineage.jsonl"),
        "append": True,
    }
    with_marquez = {**STACK_ENV, "MARQUEZ_URL": "http://127.0.0.1:5000"}
    assert demo.lineage_transport(settings, with_marquez)["type"] == "http"
    assert "OpenLineage events went to a local file" in demo.describe_lineage(settings, STACK_ENV)


def test_install_dags_copies_the_two_example_dags_beside_the_users_own(tmp_path: Path) -> None:
    settings = demo.DemoSettings.from_stack(STACK_ENV, home=tmp_path, dags_source=ROOT / "dags")
    folder = tmp_path / "stack-dags"
    folder.mkdir()
    (folder / "users_own.py").write_text("# a DAG of the user's")
    (folder / "iris_training.py").write_text("# an outdated copy")
    copied = demo.install_dags(settings, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["iris_inference.py", "iris_training.py", "users_own.py"]
    for path in copied:
        assert path.read_text() == (ROOT / "dags" / path.name).read_text()


def test_cli_knows_demo_and_provenance() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["demo", "--home", "/tmp/x"])
    assert args.handler is devstack_cli._demo
    assert args.home == Path("/tmp/x")
    args = parser.parse_args(["provenance", "lakefs://r/main/p", "--json"])
    assert args.handler is cli._provenance
    assert args.json


class _DeletingLakeFS:
    """A lakeFS boundary that, like the real one, refuses a create while an older repository of the
    same name exists (for example while its deletion finishes)."""

    def __init__(self, existing_namespace: str | None, creates_until_gone: int) -> None:
        self.existing_namespace = existing_namespace
        self.creates_until_gone = creates_until_gone
        self.created: list[tuple[str, str]] = []

    def create_repository(self, name: str, storage_namespace: str) -> None:
        if self.existing_namespace is not None:
            self.creates_until_gone -= 1
            if self.creates_until_gone <= 0:
                self.existing_namespace = None
            raise LakeFSConflictError(f"repository {name} not unique", repository=name)
        self.created.append((name, storage_namespace))

    def repository_storage_namespace(self, name: str) -> str:
        if self.existing_namespace is None:
            raise LakeFSNotFoundError(f"repository {name} not found", repository=name)
        return self.existing_namespace


def test_create_after_delete_waits_until_the_old_repository_is_gone() -> None:
    lakefs = _DeletingLakeFS("local://old", creates_until_gone=3)
    demo.create_repository_after_delete(lakefs, "iris-train", "local://new", pause=0)  # type: ignore[arg-type]
    assert lakefs.created == [("iris-train", "local://new")]


def test_create_after_delete_accepts_its_own_earlier_create() -> None:
    lakefs = _DeletingLakeFS("local://new", creates_until_gone=10**6)
    demo.create_repository_after_delete(lakefs, "iris-train", "local://new", pause=0)  # type: ignore[arg-type]
    assert lakefs.created == []


def test_create_after_delete_gives_up_with_the_conflict() -> None:
    lakefs = _DeletingLakeFS("local://old", creates_until_gone=10**6)
    with pytest.raises(LakeFSConflictError, match="iris-train"):
        demo.create_repository_after_delete(lakefs, "iris-train", "local://new", timeout=0.05, pause=0)  # type: ignore[arg-type]


def test_the_default_dags_source_is_the_checkout_s_dags_folder() -> None:
    assert demo.repository_root() == ROOT
    assert demo.DemoSettings.from_stack(STACK_ENV).dags_source == ROOT / "dags"
