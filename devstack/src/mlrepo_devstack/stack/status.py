"""What ``up`` and ``status`` report about each component of the local stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

#: ``running``: a process of ours answers its health check.
#: ``ready``: not a process, but usable (the Airflow metadata schema is migrated).
#: ``stopped``: not running (never started, or brought down).
#: ``unavailable``: cannot be provided on this machine; ``detail`` says why.
ComponentState = Literal["running", "ready", "stopped", "unavailable"]

LAKEFS = "lakefs"
POSTGRES = "postgres"
MARQUEZ = "marquez"
AIRFLOW_DB = "airflow-db"
AIRFLOW = "airflow"
KUBERNETES = "kubernetes"

#: Every component, in start order.
COMPONENTS: tuple[str, ...] = (POSTGRES, LAKEFS, MARQUEZ, AIRFLOW_DB, KUBERNETES, AIRFLOW)
#: What ``up()`` starts when no component is named. The Airflow services and Kubernetes are opt-in.
DEFAULT_COMPONENTS: tuple[str, ...] = (POSTGRES, LAKEFS, MARQUEZ, AIRFLOW_DB)
#: Components whose failure makes ``up`` fail. Marquez is optional: its failure is reported.
REQUIRED_COMPONENTS: frozenset[str] = frozenset({POSTGRES, LAKEFS, AIRFLOW_DB})
#: What each component needs running first.
DEPENDENCIES: Mapping[str, tuple[str, ...]] = {
    POSTGRES: (),
    LAKEFS: (),
    MARQUEZ: (POSTGRES,),
    AIRFLOW_DB: (POSTGRES,),
    KUBERNETES: (LAKEFS,),
    AIRFLOW: (POSTGRES, AIRFLOW_DB),
}
#: What stopping each component's dependencies takes down with it: its dependencies, except that the
#: cluster outlives a lakeFS stop. Its lakeFS proxy forwards each new connection to lakeFS's port,
#: so pods see the outage as they would a remote lakeFS's, and the cluster need not start again.
STOPPED_WITH: Mapping[str, tuple[str, ...]] = {**DEPENDENCIES, KUBERNETES: ()}


@dataclass(frozen=True)
class ComponentStatus:
    """State of one component."""

    name: str
    state: ComponentState
    endpoint: str | None = None
    detail: str = ""
    pid: int | None = None
    version: str | None = None
    extra_endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_up(self) -> bool:
        return self.state in ("running", "ready")

    def describe(self) -> str:
        """One line for humans: ``lakefs  running  http://127.0.0.1:8000  (pid 12, v1.86.0)``."""
        parts = [f"{self.name:<11}", f"{self.state:<11}"]
        if self.endpoint:
            parts.append(self.endpoint)
        notes = []
        if self.pid is not None:
            notes.append(f"pid {self.pid}")
        if self.detail:
            notes.append(self.detail)
        notes.extend(f"{label} {url}" for label, url in self.extra_endpoints.items())
        line = "  ".join(parts)
        if notes:
            line += "  (" + ", ".join(notes) + ")"
        return line


@dataclass(frozen=True)
class StackStatus:
    """State of every component, plus where ``stack.env`` lives."""

    components: Mapping[str, ComponentStatus]
    env_file: Path

    def __getitem__(self, name: str) -> ComponentStatus:
        return self.components[name]

    def __iter__(self) -> Iterator[ComponentStatus]:
        return iter(self.components.values())

    @property
    def required_up(self) -> bool:
        """True when lakeFS, PostgreSQL and the Airflow metadata DB are all usable."""
        return all(self.components[name].is_up for name in REQUIRED_COMPONENTS if name in self.components)
