from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
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


ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "src" / "airflow_mlrepo"


def _mlrepo_options_read_in_code() -> set[str]:
    """Every ``[mlrepo]`` option the provider's code reads: ``conf.get("mlrepo"|CONFIG_SECTION, "<option>")``
    and the outbox's ``_airflow_option("<option>")``."""
    options: set[str] = set()
    for source in PROVIDER.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 1:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            args = node.args
            if name in ("get", "getboolean", "getint", "getfloat", "getjson") and len(args) >= 2:
                section = args[0]
                is_mlrepo = (isinstance(section, ast.Constant) and section.value == "mlrepo") or (
                    isinstance(section, ast.Name) and section.id == "CONFIG_SECTION"
                )
                if is_mlrepo and isinstance(args[1], ast.Constant):
                    options.add(str(args[1].value))
            elif name == "_airflow_option" and isinstance(args[0], ast.Constant):
                options.add(str(args[0].value))
    return options


def test_every_mlrepo_option_the_code_reads_is_declared_with_a_description_type_and_default() -> None:
    declared = get_provider_info()["config"]["mlrepo"]["options"]
    read = _mlrepo_options_read_in_code()
    assert read, "the scan found no [mlrepo] option"
    assert read <= set(declared), f"read but not declared: {sorted(read - set(declared))}"
    assert set(declared) <= read, f"declared but never read: {sorted(set(declared) - read)}"
    for option, spec in declared.items():
        assert spec["description"], option
        assert spec["type"] == "string", option
        assert "default" in spec, option


def test_operators_and_extra_links_are_listed_and_exist() -> None:
    info = get_provider_info()
    modules = [module for entry in info["operators"] for module in entry["python-modules"]]
    listed_operators = set()
    for module_name in modules:
        module = importlib.import_module(module_name)
        listed_operators |= {name for name in vars(module) if name.endswith("Operator") and name.startswith("LakeFS")}
    for name in ("LakeFSTrainingOperator", "LakeFSInferenceOperator", "LakeFSRevertOperator", "LakeFSPodOperator"):
        assert name in listed_operators, name
    # every extra link an operator shows is listed, and every listed one exists
    shown = set()
    for module_name in modules:
        for value in vars(importlib.import_module(module_name)).values():
            for link in getattr(value, "operator_extra_links", ()) if isinstance(value, type) else ():
                shown.add(f"{type(link).__module__}.{type(link).__qualname__}")
    assert shown == set(info["extra-links"]), (sorted(shown), info["extra-links"])


def test_airflow_config_list_shows_the_mlrepo_section(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__MLREPO__")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    airflow_cli = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow_cli), "config", "list", "--section", "mlrepo", "--include-descriptions", "--defaults"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[mlrepo]" in result.stdout
    for option in get_provider_info()["config"]["mlrepo"]["options"]:
        assert f"{option} =" in result.stdout, (option, result.stdout[-3000:])
    assert "Where training and inference containers run" in result.stdout
