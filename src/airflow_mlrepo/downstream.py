"""Downstream impact: every model and prediction derived from a data or model commit, transitively.

Pachyderm answers "what did this commit cause?" with ``pachctl list commit <global id>``. Here the
answer is read from the provenance metadata the operators put on every output commit
(:mod:`airflow_mlrepo.provenance`): each output names the commit of each pinned input
(``mlrepo.input.<name> = lakefs://repo/<commit>/path``). An index of all output commits of the
scanned repositories (the first-parent history of each branch) is searched breadth first:

* an output is *derived* from a commit when one of its pinned inputs is that commit, or (for a data
  commit, which has no provenance of its own) a later commit of the same repository whose history
  contains it and no revert of it (a revert commit made by ``LakeFSRevertOperator`` records
  ``mlrepo.reverted_commit``; lakeFS's own revert message names the commit);
* what derives from a derived output is derived too (data → model → predictions).

An output is *current* unless a newer output commit on the same branch wrote the same output location
(``mlrepo.output``: a later run of the pipeline, or the recompute of a cleared run, replaced it), or,
for output commits that do not record their location (older ones, datum merges), a newer output
commit of the same Airflow task instance (dag, run, task, map index). Nothing here writes to lakeFS.

Recompute (:func:`recompute_plan`): an output can be recomputed by clearing its Airflow run when
the commit it derives from reached it through a model chosen with the ``latest`` policy (a cleared
run then picks the newest model). Outputs whose bad input is pinned (training data, an inference
input, a model chosen ``as_of`` or explicitly) would be recomputed from the same commit: they are
reported as needing a new run instead (e.g. retrain on the reverted data).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.provenance import OUTPUT
from airflow_mlrepo.provenance_report import FORMAT_KEY, Links, literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from rich.tree import Tree

    from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook

#: How many commits of a branch's first-parent history are indexed.
HISTORY_LOOKBACK = 5000
#: How far back from a pinned data commit its history is searched for the queried commit.
ANCESTRY_LOOKBACK = 1000
REVERTED_COMMIT_KEY = "mlrepo.reverted_commit"
MODEL_INPUT = "model"


@dataclass(frozen=True)
class OutputCommit:
    """One output commit (model or predictions) as its provenance metadata describes it."""

    repository: str
    branch: str
    commit_id: str
    output_kind: str
    created_at: str
    inputs: dict[str, LakeFSLocation]
    dag_id: str
    run_id: str
    task_id: str
    map_index: str
    model_policy: str | None
    creation_date: int
    #: the path it was written to (``mlrepo.output``), when the commit records it
    output_path: str | None = None

    @property
    def task_instance(self) -> tuple[str, str, str, str]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    @property
    def replaced_by_key(self) -> tuple[str, ...]:
        """What a newer output commit on the same branch must share with this one to replace it."""
        if self.output_path is not None:
            return ("output", self.output_path)
        return ("task_instance", *self.task_instance)

    @classmethod
    def from_commit(cls, repository: str, branch: str, commit: LakeFSCommit) -> OutputCommit | None:
        meta = commit.metadata
        if FORMAT_KEY not in meta:
            return None
        inputs: dict[str, LakeFSLocation] = {}
        for name in [n for n in meta.get("mlrepo.inputs", "").split(",") if n]:
            try:
                inputs[name] = LakeFSLocation.parse(meta.get(f"mlrepo.input.{name}", ""))
            except InvalidLakeFSLocationError:
                continue
        return cls(
            repository=repository,
            branch=branch,
            commit_id=commit.id,
            output_kind=meta.get("mlrepo.output_kind") or "output",
            created_at=datetime.fromtimestamp(commit.creation_date, tz=timezone.utc).isoformat(),
            inputs=inputs,
            dag_id=meta.get("mlrepo.dag_id", ""),
            run_id=meta.get("mlrepo.run_id", ""),
            task_id=meta.get("mlrepo.task_id", ""),
            map_index=meta.get("mlrepo.map_index", "-1"),
            model_policy=meta.get("mlrepo.model.policy"),
            creation_date=commit.creation_date,
            output_path=_output_path(meta.get(OUTPUT)),
        )


@dataclass
class DerivedOutput:
    """An output derived from the queried commit, with what derives from it in turn."""

    output: OutputCommit
    via: str  # the input (name) through which it derives
    via_commit: str  # the commit of that input
    superseded_by: str | None
    commit_url: str
    run_url: str | None
    derived: list[DerivedOutput] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.superseded_by is None

    def to_dict(self) -> dict[str, Any]:
        out = self.output
        return {
            "repository": out.repository,
            "branch": out.branch,
            "commit_id": out.commit_id,
            "output_kind": out.output_kind,
            "created_at": out.created_at,
            "via_input": self.via,
            "via_commit": self.via_commit,
            "current": self.current,
            "superseded_by": self.superseded_by,
            "model_policy": out.model_policy,
            "airflow": {"dag_id": out.dag_id, "run_id": out.run_id, "task_id": out.task_id, "map_index": out.map_index},
            "commit_url": self.commit_url,
            "run_url": self.run_url,
            "derived": [child.to_dict() for child in self.derived],
        }

    def walk(self) -> Iterable[DerivedOutput]:
        yield self
        for child in self.derived:
            yield from child.walk()


@dataclass
class DownstreamReport:
    """Everything derived from ``repository``/``commit_id``."""

    repository: str
    commit_id: str
    message: str
    is_output: bool
    commit_url: str
    derived: list[DerivedOutput]
    scanned: list[str]

    def all(self) -> list[DerivedOutput]:
        return [node for top in self.derived for node in top.walk()]

    def to_dict(self) -> dict[str, Any]:
        everything = self.all()
        return {
            "repository": self.repository,
            "commit_id": self.commit_id,
            "message": self.message,
            "kind": "output" if self.is_output else "data",
            "commit_url": self.commit_url,
            "scanned_repositories": self.scanned,
            "derived": [node.to_dict() for node in self.derived],
            "counts": {
                "models": sum(1 for n in everything if n.output.output_kind == "model"),
                "predictions": sum(1 for n in everything if n.output.output_kind != "model"),
                "current": sum(1 for n in everything if n.current),
            },
        }


def index_outputs(hook: LakeFSHook, repositories: Iterable[str]) -> list[OutputCommit]:
    """Every output commit on the first-parent history of every branch of ``repositories``."""
    seen: set[tuple[str, str]] = set()
    outputs: list[OutputCommit] = []
    for repository in repositories:
        for branch in hook.list_branches(repository):
            for commit in hook.log_commits(repository, branch, amount=HISTORY_LOOKBACK, first_parent=True):
                if (repository, commit.id) in seen:
                    continue
                seen.add((repository, commit.id))
                found = OutputCommit.from_commit(repository, branch, commit)
                if found is not None:
                    outputs.append(found)
    return outputs


def superseding(outputs: Iterable[OutputCommit]) -> dict[tuple[str, str], str]:
    """(repository, commit) → the newest output commit on the same branch that replaced it (see the module doc)."""
    newest: dict[tuple[str, str, tuple[str, ...]], OutputCommit] = {}
    for out in outputs:
        key = (out.repository, out.branch, out.replaced_by_key)
        if key not in newest or out.creation_date > newest[key].creation_date:
            newest[key] = out
    return {
        (out.repository, out.commit_id): latest.commit_id
        for out in outputs
        if (latest := newest[(out.repository, out.branch, out.replaced_by_key)]).commit_id != out.commit_id
    }


def _output_path(uri: str | None) -> str | None:
    if not uri:
        return None
    try:
        return LakeFSLocation.parse(uri).path
    except InvalidLakeFSLocationError:
        return None


def _reverts(commit: LakeFSCommit, target: str) -> bool:
    if commit.metadata.get(REVERTED_COMMIT_KEY) == target:
        return True
    message = commit.message.lower()
    return message.startswith("revert") and target in commit.message


def carries_data_commit(hook: LakeFSHook, repository: str, commit_id: str, target: str) -> bool:
    """Whether ``commit_id`` is ``target`` or has it in its history, not reverted since."""
    if commit_id == target:
        return True
    for commit in hook.log_commits(repository, commit_id, amount=ANCESTRY_LOOKBACK):
        if commit.id == target:
            return True
        if _reverts(commit, target):
            return False
    return False


def downstream(
    hook: LakeFSHook,
    location: LakeFSLocation | str,
    repositories: Iterable[str],
    *,
    links: Links | None = None,
) -> DownstreamReport:
    """Every output of ``repositories`` derived from the commit ``location`` names, as a tree."""
    if isinstance(location, str):
        location = LakeFSLocation.parse(location)
    links = links or Links(lakefs_ui=hook.settings.browser_url)
    root = hook.get_commit(location.repository, location.ref)
    scanned = sorted(set(repositories))
    outputs = sorted(index_outputs(hook, scanned), key=lambda out: (out.creation_date, out.commit_id))
    replaced = superseding(outputs)
    root_is_output = FORMAT_KEY in root.metadata

    def node(out: OutputCommit, via: str, via_commit: str) -> DerivedOutput:
        return DerivedOutput(
            output=out,
            via=via,
            via_commit=via_commit,
            superseded_by=replaced.get((out.repository, out.commit_id)),
            commit_url=links.commit(out.repository, out.commit_id),
            run_url=links.airflow_run(out.dag_id, out.run_id) if out.dag_id and out.run_id else None,
        )

    carried: dict[tuple[str, str], bool] = {}

    def derives_from_root(pinned: LakeFSLocation) -> bool:
        if pinned.repository != root_location.repository:
            return False
        if pinned.ref == root.id:
            return True
        if root_is_output:
            return False
        key = (pinned.repository, pinned.ref)
        if key not in carried:
            carried[key] = carries_data_commit(hook, pinned.repository, pinned.ref, root.id)
        return carried[key]

    root_location = location
    top: list[DerivedOutput] = []
    placed: dict[tuple[str, str], DerivedOutput] = {}
    queue: deque[DerivedOutput] = deque()
    for out in outputs:
        for name, pinned in out.inputs.items():
            if derives_from_root(pinned) and (out.repository, out.commit_id) not in placed:
                child = node(out, name, pinned.ref)
                placed[(out.repository, out.commit_id)] = child
                top.append(child)
                queue.append(child)
    while queue:
        parent = queue.popleft()
        for out in outputs:
            if (out.repository, out.commit_id) in placed:
                continue
            for name, pinned in out.inputs.items():
                if pinned.repository == parent.output.repository and pinned.ref == parent.output.commit_id:
                    child = node(out, name, pinned.ref)
                    placed[(out.repository, out.commit_id)] = child
                    parent.derived.append(child)
                    queue.append(child)
                    break
    return DownstreamReport(
        repository=location.repository,
        commit_id=root.id,
        message=root.message,
        is_output=root_is_output,
        commit_url=links.commit(location.repository, root.id),
        derived=top,
        scanned=scanned,
    )


# ------------------------------------------------------------------ recompute


@dataclass(frozen=True)
class RecomputeItem:
    """One current output and whether clearing its Airflow run recomputes it without the bad commit."""

    output: OutputCommit
    clearable: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = self.output
        return {
            "repository": out.repository,
            "commit_id": out.commit_id,
            "output_kind": out.output_kind,
            "dag_id": out.dag_id,
            "run_id": out.run_id,
            "task_id": out.task_id,
            "clearable": self.clearable,
            "reason": self.reason,
        }


def recompute_plan(report: DownstreamReport) -> list[RecomputeItem]:
    """The current derived outputs, each marked clearable or not (with the reason)."""
    items: list[RecomputeItem] = []
    for node in report.all():
        if not node.current:
            continue
        out = node.output
        if node.via == MODEL_INPUT and (out.model_policy or "latest") == "latest":
            items.append(
                RecomputeItem(
                    out,
                    True,
                    f"its model {node.via_commit[:12]} was chosen as 'latest': a cleared run picks the newest model",
                )
            )
        else:
            policy = f" (model policy '{out.model_policy}')" if node.via == MODEL_INPUT and out.model_policy else ""
            items.append(
                RecomputeItem(
                    out,
                    False,
                    f"its input '{node.via}' is pinned to {node.via_commit[:12]}{policy}: a "
                    "cleared run would read the same commit; start a new run on fixed data "
                    "(e.g. retrain after the revert)",
                )
            )
    return items


def runs_to_clear(items: Iterable[RecomputeItem]) -> list[tuple[str, str]]:
    """The distinct (dag_id, run_id) of the clearable items, in order."""
    runs: list[tuple[str, str]] = []
    for item in items:
        key = (item.output.dag_id, item.output.run_id)
        if item.clearable and key not in runs:
            runs.append(key)
    return runs


# ------------------------------------------------------------------ rendering


def render_tree(report: DownstreamReport) -> Tree:
    from rich.tree import Tree

    kind = "output" if report.is_output else "data"
    tree = Tree(
        f"[bold]downstream of[/bold] lakefs://{literal(report.repository)}/{report.commit_id[:12]} "
        f"({kind} commit {literal(repr(report.message))})"
    )

    def add(branch: Tree, node: DerivedOutput) -> None:
        out = node.output
        state = "[green]current[/green]" if node.current else f"[dim]superseded by {node.superseded_by[:12]}[/dim]"  # type: ignore[index]
        sub = branch.add(
            f"[bold]{literal(out.output_kind)}[/bold]  lakefs://{literal(out.repository)}/{out.commit_id[:12]}  "
            f"{state}  via [cyan]{literal(node.via)}[/cyan]\n"
            f"Airflow dag {literal(out.dag_id)}  run {literal(out.run_id)}  task {literal(out.task_id)}\n"
            f"{literal(node.commit_url)}"
        )
        for child in node.derived:
            add(sub, child)

    for node in report.derived:
        add(tree, node)
    if not report.derived:
        tree.add("[dim]nothing derived from it in " + literal(", ".join(report.scanned)) + "[/dim]")
    return tree


def render_json(report: DownstreamReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True)


def summary(report: Mapping[str, Any]) -> str:
    counts = report["counts"]
    return f"{counts['models']} models and {counts['predictions']} predictions derived ({counts['current']} current)"


__all__ = [
    "DerivedOutput",
    "DownstreamReport",
    "OutputCommit",
    "RecomputeItem",
    "downstream",
    "index_outputs",
    "recompute_plan",
    "render_json",
    "render_tree",
    "runs_to_clear",
]


def repository_names(hook: LakeFSHook) -> list[str]:
    """Every repository of the lakeFS server, by name (paging through ``GET /repositories``)."""
    names: list[str] = []
    after = ""
    while True:
        page = hook._call("list repositories", hook.client.repositories_api.list_repositories, after=after, amount=1000)
        names.extend(repository.id for repository in page.results)
        if not page.pagination.has_more:
            return names
        after = page.pagination.next_offset
