"""Each distribution of this repository declares what its code imports (and the Airflow it needs)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: distribution -> (its package directory, its own top-level module)
DISTRIBUTIONS = {
    "airflow-mlrepo": ("src/airflow_mlrepo", "airflow_mlrepo"),
    "mlrepo-sdk": ("sdk/src/mlrepo_sdk", "mlrepo_sdk"),
    "mlrepo-devstack": ("devstack/src/mlrepo_devstack", "mlrepo_devstack"),
    "mlrepo-iris-example": ("docker/iris/mlrepo_iris", "mlrepo_iris"),
}
OWN_MODULES = {module: name for name, (_, module) in DISTRIBUTIONS.items()}
#: Imports undeclared on purpose (none left: the provider's CLI takes `mlrepo stack|demo` from the
#: dev stack through entry points, and the iris example holds the model I/O it shares). The test
#: fails when one is no longer needed, so the list only shrinks.
KNOWN_UNDECLARED: dict[str, set[str]] = {}
#: Declared for what Airflow loads at run time, never imported by our code (the metadata DB drivers).
RUNTIME_ONLY = {"mlrepo-devstack": {"asyncpg", "psycopg2-binary"}}


def _imported_modules(package_dir: Path, own: str) -> set[str]:
    modules: set[str] = set()
    for source in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in (own, "__future__")}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(distribution: str) -> set[str]:
    requirements = importlib.metadata.requires(distribution) or []
    return {
        _canonical(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])
        for requirement in requirements
        if "extra ==" not in requirement
    }


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_every_import_is_declared_and_every_declaration_imported(distribution: str) -> None:
    package_dir, own = DISTRIBUTIONS[distribution]
    providers = importlib.metadata.packages_distributions()
    declared = _declared(distribution)
    imported: set[str] = set()
    for module in _imported_modules(ROOT / package_dir, own):
        if module in OWN_MODULES:
            imported.add(OWN_MODULES[module])
            continue
        if module == "airflow":  # a namespace shared by apache-airflow's parts: declared as apache-airflow
            imported.add("apache-airflow")
            continue
        candidates = {_canonical(d) for d in providers.get(module, [])}
        assert candidates, f"{distribution}: no installed distribution provides the module {module!r}"
        # a namespace several distributions share (openlineage.*): the declared one provides it
        imported.add(next((c for c in sorted(candidates) if c in declared), sorted(candidates)[0]))
    known = KNOWN_UNDECLARED.get(distribution, set())
    undeclared = imported - declared - known
    assert not undeclared, f"{distribution} imports but does not declare: {sorted(undeclared)}"
    assert known <= imported - declared, (
        f"{distribution}: drop {sorted(known - (imported - declared))} from KNOWN_UNDECLARED"
    )
    # Airflow providers are imported as airflow.providers.*: count them as the airflow import.
    unused = {
        d
        for d in declared - imported - RUNTIME_ONLY.get(distribution, set())
        if not d.startswith("apache-airflow-providers-")
    }
    assert not unused, f"{distribution} declares but never imports: {sorted(unused)}"


def test_the_provider_requires_the_airflow_with_task_and_asset_state_stores() -> None:
    """Sensor replay, reset detection and the watermark need Airflow 3.3's state stores."""
    requirement = next(
        r for r in importlib.metadata.requires("airflow-mlrepo") or [] if r.startswith("apache-airflow<")
    )
    assert ">=3.3" in requirement, requirement
