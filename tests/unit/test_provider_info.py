from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

from airflow_mlrepo.get_provider_info import get_provider_info


def test_provider_info_matches_airflow_schema() -> None:
    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_and_package_name() -> None:
    (entry,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_mlrepo")]
    info = entry.load()()
    assert info["package-name"] == "airflow-mlrepo"


def test_connection_type_points_at_a_hook_with_the_right_attributes() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    module_name, _, class_name = conn_type["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module_name), class_name)
    assert hook_class.conn_type == conn_type["connection-type"] == "lakefs"
    assert hook_class.default_conn_name == "lakefs_default"
    assert hook_class.conn_name_attr == "lakefs_conn_id"
    assert callable(hook_class.test_connection)
    fields = conn_type["ui-field-behaviour"]
    assert fields["relabeling"]["password"] == "Secret access key"
    assert "extra" in fields["hidden-fields"]
