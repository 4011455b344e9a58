"""Fixtures for the frameworks tier: the integration tier's real lakeFS and Airflow metadata DB, and
where the example containers run: ``MLREPO_RUNNER=local`` (default) with the Python of the frameworks
environment (``make frameworks-install``), or ``MLREPO_RUNNER=kubernetes`` as pods of each
framework's image (built from ``docker/<name>`` and imported) on the stack's cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import airflow_metadata_db, hook, kube, kubernetes_cluster, lakefs_server, stack_env

__all__ = [
    "airflow_metadata_db",
    "container_runtime",
    "frameworks_python",
    "hook",
    "kube",
    "kubernetes_cluster",
    "lakefs_server",
    "stack_env",
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def frameworks_python() -> str:
    """``$MLREPO_FRAMEWORKS_PYTHON``, else ``.venv-frameworks/bin/python`` of the repository."""
    # absolute (the local runner starts commands in a temporary directory), not resolved (a venv's
    # python is a symlink to the base interpreter, which would lose the venv)
    python = Path(os.environ.get("MLREPO_FRAMEWORKS_PYTHON") or ROOT / ".venv-frameworks" / "bin" / "python").absolute()
    if not python.exists():
        pytest.skip(f"no frameworks environment at {python}: run `make frameworks-install` (or `make frameworks`)")
    return str(python)


@dataclass(frozen=True)
class ContainerRuntime:
    """Where the example containers run: the runner and the ``python`` their commands start."""

    runner: str
    python: str

    def ensure_image(self, tag: str) -> None:
        """Kubernetes: build (when its inputs changed) and import the project image tagged ``tag``."""
        if self.runner != "kubernetes":
            return
        from mlrepo_devstack.stack import kubernetes_images
        from mlrepo_devstack.stack.state import StackSettings

        names = [name for name, image in kubernetes_images.PROJECT_IMAGES.items() if image.tag == tag]
        root = kubernetes_images.source_root()
        assert names, f"no project image is tagged {tag}"
        assert root is not None, "the Dockerfiles of docker/ were not found"
        kubernetes_images.ensure_project_image(StackSettings.from_environ(), root, names[0])


@pytest.fixture(scope="module")  # as the cluster's fixture (kube), which restores its variables after the module
def container_runtime(request: pytest.FixtureRequest) -> ContainerRuntime:
    from mlrepo_devstack.stack import airflow_services

    runner = airflow_services.runner()  # MLREPO_RUNNER, validated, default local
    if runner == "kubernetes":
        request.getfixturevalue("kube")
        return ContainerRuntime(runner, "python")  # the image's own
    return ContainerRuntime(runner, request.getfixturevalue("frameworks_python"))
