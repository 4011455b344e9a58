"""Every distribution of this repository, built as a wheel and installed as a user would.

Each wheel goes into a clean virtual environment of its own with only what it declares (resolved
from the package index by ``uv``; the repository's own wheels from ``dist/``), then every module in
it is imported there. The provider's wheel must hold only the provider: no dev stack, no demo, no
Go sources, no example containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


@dataclass(frozen=True)
class Distribution:
    name: str
    project: str  # folder with its pyproject.toml, relative to the repository root
    package: str  # its top-level import package
    needs: tuple[str, ...] = ()  # other distributions of this repository it depends on


DISTRIBUTIONS = (
    Distribution("mlrepo_sdk", "sdk", "mlrepo_sdk"),
    Distribution("airflow_mlrepo", ".", "airflow_mlrepo", needs=("mlrepo_sdk",)),
    Distribution("mlrepo_iris_example", "docker/iris", "mlrepo_iris", needs=("mlrepo_sdk",)),
    Distribution(
        "mlrepo_devstack",
        "devstack",
        "mlrepo_devstack",
        needs=("airflow_mlrepo", "mlrepo_sdk", "mlrepo_iris_example"),
    ),
)
#: What runs inside training and inference images: no Airflow there.
AIRFLOW_FREE = {"mlrepo_sdk", "mlrepo_iris_example"}
BY_NAME = {distribution.name: distribution for distribution in DISTRIBUTIONS}

#: Run inside each clean environment: import every module of one package, report failures as JSON.
IMPORT_ALL = """
import importlib, json, pkgutil, sys, traceback
package = importlib.import_module(sys.argv[1])
names = [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps({"imported": len(names) - len(failed), "failed": failed}))
"""


def _run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    for distribution in DISTRIBUTIONS:
        _run(UV, "build", "--wheel", "--quiet", "--out-dir", dist, ROOT / distribution.project)
    built = {path.name.split("-")[0]: path for path in dist.glob("*.whl")}
    assert sorted(built) == sorted(BY_NAME), sorted(built)
    return built


def test_the_provider_wheel_holds_only_the_provider(wheels: dict[str, Path]) -> None:
    names = zipfile.ZipFile(wheels["airflow_mlrepo"]).namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("airflow_mlrepo-")}
    assert packages == {"airflow_mlrepo"}, sorted(packages)
    unwanted = [
        name
        for name in names
        if name.endswith((".go", "go.mod", "go.sum", "Dockerfile"))
        or any(part in name.split("/") for part in ("stack", "demo.py", "demo_worker.py", "mlrepo_iris", "tests"))
    ]
    assert not unwanted, unwanted
    for role in ("hooks", "sensors", "triggers", "operators", "lineage"):
        assert any(name.startswith(f"airflow_mlrepo/{role}/") for name in names), role
    metadata = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheels["airflow_mlrepo"]).read(metadata).decode()
    assert "apache_airflow_provider" in entry_points
    assert "mlrepo_devstack" not in entry_points


@pytest.mark.parametrize("name", [distribution.name for distribution in DISTRIBUTIONS])
def test_each_wheel_imports_in_a_clean_environment_with_only_its_declared_dependencies(
    name: str, wheels: dict[str, Path], tmp_path: Path
) -> None:
    distribution = BY_NAME[name]
    venv = tmp_path / "venv"
    _run(UV, "venv", "--quiet", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", venv)
    python = venv / "bin" / "python"
    # Only this wheel and the repository's own wheels it names; everything else from the index.
    local = [wheels[name], *(wheels[need] for need in distribution.needs)]
    _run(UV, "pip", "install", "--quiet", "--python", python, *local)
    installed = {
        entry["name"].replace("-", "_")
        for entry in json.loads(_run(UV, "pip", "list", "--format", "json", "--python", python))
    }
    own = {other for other in BY_NAME if other in installed}
    assert own == {name, *distribution.needs}, f"{name} pulled in {sorted(own - {name, *distribution.needs})}"
    if name in AIRFLOW_FREE:
        assert not {n for n in installed if n.startswith("apache_airflow")}, f"{name} pulled in Airflow"

    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    report = json.loads(_run(python, "-c", IMPORT_ALL, distribution.package, cwd=tmp_path, env=env))
    assert not report["failed"], "\n".join(f"{module}:\n{error}" for module, error in report["failed"].items())
    assert report["imported"] > 1
