"""``mlrepo provenance``: walk an output back to the commits, code and Airflow run that produced it.

Starting from a prediction or model object, a prefix or a commit (``lakefs://repo/ref/path``), the
report finds the commit that last wrote it and reads the provenance metadata the operators put
there (:mod:`airflow_mlrepo.provenance`). Every pinned input is followed to its commit: a model
commit carries provenance of its own (its training-data commit, its run), a plain data commit is a
leaf. The result is a :class:`ProvenanceNode` tree, rendered with ``rich`` or as JSON.

Nothing here writes to lakeFS; an object whose last commit carries no ``mlrepo.*`` metadata
raises :class:`~airflow_mlrepo.exceptions.NoProvenanceError`.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import (
    InvalidLakeFSLocationError,
    LakeFSNotFoundError,
    MlRepoError,
    NoProvenanceError,
)
from airflow_mlrepo.links.lakefs_ui import LakeFSUI
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.provenance import (
    LAKEFS_AIRFLOW,
    MODEL_FORMAT_KEY,
    MODEL_FRAMEWORK_KEY,
    OUTPUT,
    recorded_run_type,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.tree import Tree

    from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook

#: Metadata key present on every output commit an mlrepo task wrote.
FORMAT_KEY = "mlrepo.format"
#: How deep a chain is followed (model → training data → ...); guards against cycles in bad metadata.
MAX_DEPTH = 16
#: How far back along the ref's first-parent history the merge of an output commit is looked for.
FIRST_PARENT_LOOKBACK = 1000
KIND_OUTPUT = "output"
KIND_DATA = "data"


@dataclass(frozen=True)
class Links:
    """Where the report's links point: the lakeFS UI, the Airflow UI, the Marquez API (all optional)."""

    lakefs_ui: str
    airflow_ui: str | None = None
    marquez_api: str | None = None

    def commit(self, repository: str, commit_id: str) -> str:
        return LakeFSUI(self.lakefs_ui).commit(repository, commit_id)

    def objects(self, repository: str, ref: str, path: str) -> str:
        return LakeFSUI(self.lakefs_ui).object(repository, ref, path)

    def compare(self, repository: str, base: str, other: str) -> str:
        return LakeFSUI(self.lakefs_ui).compare(repository, base, other)

    def airflow_run(self, dag_id: str, run_id: str) -> str | None:
        if not self.airflow_ui:
            return None
        quote = urllib.parse.quote
        return f"{self.airflow_ui.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"

    def marquez_run(self, openlineage_run_id: str | None) -> str | None:
        if not self.marquez_api or not openlineage_run_id:
            return None
        return f"{self.marquez_api.rstrip('/')}/api/v1/jobs/runs/{openlineage_run_id}"


@dataclass(frozen=True)
class AirflowRun:
    """The Airflow task attempt recorded on an output commit."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: str
    map_index: str
    run_type: str | None
    logical_date: str | None
    data_interval_end: str | None
    task_url: str | None
    run_url: str | None
    openlineage_run_id: str | None
    marquez_run_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ProvenanceNode:
    """One commit in a provenance chain: an output (with its run and inputs) or a plain data commit."""

    role: str
    kind: str
    repository: str
    commit_id: str
    path: str
    message: str
    committer: str
    created_at: str
    commit_url: str
    output_kind: str | None = None
    pin_rule: str | None = None
    pin_as_of: str | None = None
    pinned_from: str | None = None
    image: str | None = None
    runner: str | None = None
    command: list[str] | None = None
    hyperparameters: dict[str, Any] | None = None
    model_policy: str | None = None
    model_framework: str | None = None
    model_format: str | None = None
    airflow: AirflowRun | None = None
    inputs: tuple[ProvenanceNode, ...] = field(default_factory=tuple)
    #: Datum pipelines: the run's counts, and the batch task (commit + run) that computed this object.
    datums: dict[str, Any] | None = None
    computed_by: dict[str, Any] | None = None

    @property
    def location(self) -> str:
        return f"lakefs://{self.repository}/{self.commit_id}/{self.path}"

    def find(self, role: str) -> ProvenanceNode | None:
        """The first node with ``role`` in this tree (depth first), e.g. ``find("training_data")``."""
        if self.role == role:
            return self
        for child in self.inputs:
            found = child.find(role)
            if found is not None:
                return found
        return None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "role": self.role,
            "kind": self.kind,
            "location": self.location,
            "repository": self.repository,
            "commit_id": self.commit_id,
            "path": self.path,
            "message": self.message,
            "committer": self.committer,
            "created_at": self.created_at,
            "commit_url": self.commit_url,
        }
        optional = {
            "output_kind": self.output_kind,
            "pin_rule": self.pin_rule,
            "pin_as_of": self.pin_as_of,
            "pinned_from": self.pinned_from,
            "image": self.image,
            "runner": self.runner,
            "command": self.command,
            "hyperparameters": self.hyperparameters,
            "model_policy": self.model_policy,
            "model_framework": self.model_framework,
            "model_format": self.model_format,
            "datums": self.datums,
            "computed_by": self.computed_by,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        if self.airflow is not None:
            data["airflow"] = self.airflow.to_dict()
        if self.kind == KIND_OUTPUT:
            data["inputs"] = [child.to_dict() for child in self.inputs]
        return data


@dataclass(frozen=True)
class _Pin:
    rule: str | None = None
    as_of: str | None = None
    source: str | None = None


def has_provenance(metadata: Mapping[str, str]) -> bool:
    return FORMAT_KEY in metadata


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).isoformat()


def _json_or_none(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
        return raw


def find_commit(hook: LakeFSHook, location: LakeFSLocation) -> LakeFSCommit:
    """The commit ``location`` stands for: the ref's commit for a bare ref; else, on the ref's
    first-parent history, the newest commit of an mlrepo task that recorded writing the object (or
    prefix), back to the commit that last changed it (or, for a prefix, anything under it)."""
    if not location.path:
        return hook.get_commit(location.repository, location.ref)
    path = location.path
    is_object = not path.endswith("/") and hook.object_exists(location.repository, location.ref, path)
    if is_object:
        found = next(hook.log_commits(location.repository, location.ref, objects=[path], amount=1), None)
    else:
        prefix = path if path.endswith("/") else f"{path}/"
        found = next(hook.log_commits(location.repository, location.ref, prefixes=[prefix], amount=1), None)
    if found is None:
        raise _nothing_at(location)
    return _commit_on_ref(hook, location, found)


def _commit_on_ref(hook: LakeFSHook, location: LakeFSLocation, changed: LakeFSCommit) -> LakeFSCommit:
    """The commit on the ref's own (first-parent) history that stands for the bytes ``changed`` wrote.

    That is the newest commit, down to the one that brought ``changed`` in, of an mlrepo task that
    recorded writing ``location``: a run that produced exactly the bytes already there still commits
    (``allow_empty``), and its commit, not the earlier run's, is what that run's task instance and the
    ref's head stand for. Else the commit that brought ``changed`` in: ``changed`` itself, or the merge
    commit whose other parent it is (operators commit on an attempt branch and merge it, both with
    the same provenance). ``changed`` when not found within the lookback."""
    for commit in hook.log_commits(location.repository, location.ref, amount=FIRST_PARENT_LOOKBACK, first_parent=True):
        if commit.id == changed.id or changed.id in commit.parents[1:] or _records_writing(commit, location):
            return commit
    return changed


def _records_writing(commit: LakeFSCommit, location: LakeFSLocation) -> bool:
    """Whether ``commit`` is an mlrepo task's output commit whose recorded output holds ``location``'s path."""
    recorded = commit.metadata.get(OUTPUT)
    if not has_provenance(commit.metadata) or not recorded:
        return False
    try:
        output = LakeFSLocation.parse(recorded)
    except InvalidLakeFSLocationError:
        return False
    root, path = output.path.rstrip("/"), location.path.rstrip("/")
    return output.repository == location.repository and (not root or path == root or path.startswith(f"{root}/"))


def _nothing_at(location: LakeFSLocation) -> LakeFSNotFoundError:
    return LakeFSNotFoundError(
        f"{location.uri}: no object or prefix with this path was ever committed in the history of "
        f"ref '{location.ref}' of repository '{location.repository}'",
        repository=location.repository,
        ref=location.ref,
        path=location.path,
    )


def trace(
    hook: LakeFSHook,
    location: LakeFSLocation | str,
    *,
    links: Links | None = None,
) -> ProvenanceNode:
    """The provenance tree of a prediction or model object, prefix or commit.

    Raises :class:`NoProvenanceError` when the commit that last wrote ``location`` was not written
    by an airflow-mlrepo task, and :class:`LakeFSNotFoundError` when nothing is there.
    """
    if isinstance(location, str):
        location = LakeFSLocation.parse(location)
    links = links or Links(lakefs_ui=hook.settings.browser_url)
    commit = find_commit(hook, location)
    if not has_provenance(commit.metadata):
        what = f"commit {commit.id}" if not location.path else f"the last commit that changed it, {commit.id},"
        raise NoProvenanceError(
            f"{location.uri} carries no airflow-mlrepo provenance: {what} ('{commit.message}' by "
            f"{commit.committer or 'unknown'}) has no '{FORMAT_KEY}' metadata. Only outputs committed by "
            "LakeFSTrainingOperator / LakeFSInferenceOperator (models, predictions) have provenance; "
            "data pushed by people or other tools is where provenance chains end.",
            repository=location.repository,
            ref=location.ref,
            path=location.path,
        )
    role = commit.metadata.get("mlrepo.output_kind") or KIND_OUTPUT
    node = _node(hook, links, role, location.repository, location.path, commit, _Pin(), depth=0, seen=set())
    if DATUMS_PIPELINE in commit.metadata:
        batch = commit if DATUMS_BATCH in commit.metadata else _batch_commit(hook, location)
        publish = commit if DATUMS_BATCH not in commit.metadata else _publishing_commit(hook, location, commit)
        node = replace(
            node,
            datums=datum_counts(publish.metadata, publish.id) if publish is not None else None,
            computed_by=_computed_by(links, location.repository, batch) if batch is not None else None,
        )
    return node


DATUMS_PIPELINE = "mlrepo.datums.pipeline"
DATUMS_BATCH = "mlrepo.datums.batch"
_DATUM_COUNTS = ("mode", "reason", "processed", "skipped", "deleted", "total", "reprocess_spec")
#: How many commits that changed an object the report reads to find the batch that computed it.
_BATCH_LOOKBACK = 10


def datum_counts(metadata: Mapping[str, str], commit_id: str) -> dict[str, Any]:
    """A datum run's counts (processed, skipped, deleted, total, mode, ...) from the commit that published it."""
    counts: dict[str, Any] = {"pipeline": metadata.get(DATUMS_PIPELINE), "published_in": commit_id}
    for key in _DATUM_COUNTS:
        value = metadata.get(f"mlrepo.datums.{key}")
        if value is not None:
            counts[key] = int(value) if value.isdigit() else value
    tasks = _json_or_none(metadata.get("mlrepo.datums.tasks"))
    if isinstance(tasks, list):
        counts["tasks"] = len(tasks)
    return counts


def _batch_commit(hook: LakeFSHook, location: LakeFSLocation) -> LakeFSCommit | None:
    """The datum batch commit that last wrote ``location`` (an object), if any."""
    if not location.path or location.path.endswith("/"):
        return None
    for commit in hook.log_commits(location.repository, location.ref, objects=[location.path], amount=_BATCH_LOOKBACK):
        if DATUMS_BATCH in commit.metadata:
            return commit
    return None


def _publishing_commit(hook: LakeFSHook, location: LakeFSLocation, batch: LakeFSCommit) -> LakeFSCommit | None:
    """The commit on the ref's first-parent history whose datum run merged ``batch``."""
    for commit in hook.log_commits(location.repository, location.ref, amount=FIRST_PARENT_LOOKBACK, first_parent=True):
        if batch.id in commit.metadata.get("mlrepo.datums.tasks", ""):
            return commit
    return None


def _computed_by(links: Links, repository: str, batch: LakeFSCommit) -> dict[str, Any]:
    """The mapped task attempt that computed an object: its batch commit's run."""
    meta = batch.metadata
    return {
        "commit_id": batch.id,
        "commit_url": links.commit(repository, batch.id),
        "batch": int(meta[DATUMS_BATCH]),
        "dag_id": meta.get("mlrepo.dag_id", ""),
        "run_id": meta.get("mlrepo.run_id", ""),
        "task_id": meta.get("mlrepo.task_id", ""),
        "map_index": meta.get("mlrepo.map_index", "-1"),
        "try_number": meta.get("mlrepo.try_number", ""),
        "task_url": meta.get(f"{LAKEFS_AIRFLOW}url[url:ui]"),
    }


def _node(
    hook: LakeFSHook,
    links: Links,
    role: str,
    repository: str,
    path: str,
    commit: LakeFSCommit,
    pin: _Pin,
    *,
    depth: int,
    seen: set[tuple[str, str]],
) -> ProvenanceNode:
    base: dict[str, Any] = {
        "role": role,
        "repository": repository,
        "commit_id": commit.id,
        "path": path,
        "message": commit.message,
        "committer": commit.committer,
        "created_at": _iso(commit.creation_date),
        "commit_url": links.commit(repository, commit.id),
        "pin_rule": pin.rule,
        "pin_as_of": pin.as_of,
        "pinned_from": pin.source,
    }
    meta = commit.metadata
    if not has_provenance(meta):
        return ProvenanceNode(kind=KIND_DATA, **base)
    key = (repository, commit.id)
    if depth >= MAX_DEPTH or key in seen:
        raise MlRepoError(
            f"Provenance of lakefs://{repository}/{commit.id}/{path} loops or is deeper than {MAX_DEPTH} "
            "levels: its metadata is inconsistent"
        )
    seen = {*seen, key}
    inputs = []
    for name in [n for n in meta.get("mlrepo.inputs", "").split(",") if n]:
        uri = meta.get(f"mlrepo.input.{name}")
        if not uri:
            continue
        try:
            pinned = LakeFSLocation.parse(uri)
        except InvalidLakeFSLocationError as exc:
            raise MlRepoError(
                f"lakefs://{repository}/{commit.id}: input '{name}' is recorded as {uri!r}, not a lakeFS location"
            ) from exc
        input_commit = hook.get_commit(pinned.repository, pinned.ref)
        input_pin = _Pin(
            rule=meta.get(f"mlrepo.input.{name}.rule"),
            as_of=meta.get(f"mlrepo.input.{name}.as_of"),
            source=meta.get(f"mlrepo.input.{name}.source"),
        )
        inputs.append(
            _node(
                hook,
                links,
                name,
                pinned.repository,
                pinned.path,
                input_commit,
                input_pin,
                depth=depth + 1,
                seen=seen,
            )
        )
    dag_id = meta.get("mlrepo.dag_id", "")
    run_id = meta.get("mlrepo.run_id", "")
    openlineage_run_id = meta.get("mlrepo.openlineage_run_id")
    airflow = AirflowRun(
        dag_id=dag_id,
        run_id=run_id,
        task_id=meta.get("mlrepo.task_id", ""),
        try_number=meta.get("mlrepo.try_number", ""),
        map_index=meta.get("mlrepo.map_index", "-1"),
        run_type=recorded_run_type(meta.get(f"{LAKEFS_AIRFLOW}run_type")),
        logical_date=meta.get(f"{LAKEFS_AIRFLOW}logical_date[iso8601]"),
        data_interval_end=meta.get(f"{LAKEFS_AIRFLOW}data_interval_end[iso8601]"),
        task_url=meta.get(f"{LAKEFS_AIRFLOW}url[url:ui]"),
        run_url=links.airflow_run(dag_id, run_id) if dag_id and run_id else None,
        openlineage_run_id=openlineage_run_id,
        marquez_run_url=links.marquez_run(openlineage_run_id),
    )
    command = _json_or_none(meta.get("mlrepo.command"))
    hyperparameters = _json_or_none(meta.get("mlrepo.hyperparameters"))
    return ProvenanceNode(
        kind=KIND_OUTPUT,
        output_kind=meta.get("mlrepo.output_kind"),
        image=meta.get("mlrepo.image") or None,
        runner=meta.get("mlrepo.runner"),
        command=[part if isinstance(part, str) else json.dumps(part) for part in command]
        if isinstance(command, list)
        else None,
        hyperparameters=dict(hyperparameters) if isinstance(hyperparameters, dict) else None,
        model_policy=meta.get("mlrepo.model.policy"),
        model_framework=meta.get(MODEL_FRAMEWORK_KEY) or None,
        model_format=meta.get(MODEL_FORMAT_KEY) or None,
        airflow=airflow,
        inputs=tuple(inputs),
        **base,
    )


# ------------------------------------------------------------------ rendering


def _short(commit_id: str) -> str:
    return commit_id[:12]


def _pin_text(node: ProvenanceNode) -> str:
    if not node.pin_rule:
        return ""
    text = f"pinned by rule '{node.pin_rule}'"
    if node.pin_as_of:
        text += f" as of {node.pin_as_of}"
    if node.pinned_from:
        text += f" from {node.pinned_from}"
    return text


#: ``[`` then a character that can open a rich markup tag (``[bold]``, ``[/dim]``, ``[link=...]``, ...).
_TAG_OPENING = re.compile(r"(\\*)(\[[a-z#/@])")


def literal(text: str) -> str:
    """``text`` as literal rich markup, also when it is put next to other escaped text.

    ``rich.markup.escape`` escapes only a whole tag inside its argument, so two escaped values side
    by side (a run id ``[/`` then a task id ``]``) still form one; this escapes every ``[`` that
    could open a tag, and an odd run of trailing backslashes.
    """
    text = _TAG_OPENING.sub(lambda match: f"{match[1]}{match[1]}\\{match[2]}", text)
    if (len(text) - len(text.rstrip("\\"))) % 2:  # an odd run of backslashes would escape the next tag
        text += "\\"
    return text


def _link(url: str) -> str:
    """``url`` as a rich hyperlink; plain text when it holds brackets (they would end the markup tag)."""
    if "[" in url or "]" in url:
        return literal(url)
    return f"[link={url}]{literal(url)}[/link]"


def _add(tree: Tree, node: ProvenanceNode) -> None:
    label_kind = node.output_kind or node.kind
    heading = f"[bold]{literal(node.role)}[/bold]  [cyan]{literal(node.location)}[/cyan]"
    if node.role != label_kind:
        heading += f"  [dim]({literal(label_kind)})[/dim]"
    branch = tree.add(heading)
    branch.add(
        f"commit [green]{_short(node.commit_id)}[/green]  {literal(node.created_at)}  "
        f"{literal(repr(node.message))} by {literal(node.committer or '?')}\n{_link(node.commit_url)}"
    )
    pin = _pin_text(node)
    if pin:
        branch.add(f"[dim]{literal(pin)}[/dim]")
    if node.kind != KIND_OUTPUT:
        return
    run = node.airflow
    if run is not None:
        text = (
            f"Airflow run  dag [bold]{literal(run.dag_id)}[/bold]  run {literal(run.run_id)}  task "
            f"{literal(run.task_id)}  try {literal(run.try_number)}"
        )
        for url in (run.run_url, run.task_url):
            if url:
                text += f"\n{_link(url)}"
                break
        if run.openlineage_run_id:
            text += f"\nOpenLineage run {literal(run.openlineage_run_id)}"
            if run.marquez_run_url:
                text += f"  {literal(run.marquez_run_url)}"
        branch.add(text)
    code = f"image {literal(node.image or '(none)')}  runner {literal(node.runner or '?')}"
    if node.command:
        code += f"  command {literal(' '.join(node.command))}"
    if node.hyperparameters:
        code += f"  params {literal(json.dumps(node.hyperparameters, sort_keys=True))}"
    branch.add(code)
    if node.model_framework or node.model_format:
        branch.add(
            f"model framework [bold]{literal(node.model_framework or '?')}[/bold]  "
            f"format [bold]{literal(node.model_format or '?')}[/bold]"
        )
    if node.model_policy:
        branch.add(f"model policy [bold]{literal(node.model_policy)}[/bold]")
    if node.datums:
        counts = node.datums
        branch.add(
            f"datums ({literal(str(counts.get('mode', '?')))}): {counts.get('processed', '?')} processed, "
            f"{counts.get('skipped', '?')} skipped, {counts.get('deleted', '?')} deleted of {counts.get('total', '?')}"
            f" in {counts.get('tasks', '?')} task(s), published in {_short(str(counts.get('published_in', '')))}"
        )
    if node.computed_by:
        by = node.computed_by
        text = (
            f"computed by  run {literal(str(by['run_id']))}  task {literal(str(by['task_id']))}  map index "
            f"{literal(str(by['map_index']))}  try {literal(str(by['try_number']))}  "
            f"commit {_short(str(by['commit_id']))}"
        )
        if by.get("task_url"):
            text += f"\n[link={by['task_url']}]{literal(str(by['task_url']))}[/link]"
        branch.add(text)
    for child in node.inputs:
        _add(branch, child)


def render_tree(node: ProvenanceNode) -> Tree:
    """A ``rich`` tree of the provenance chain."""
    from rich.tree import Tree

    tree = Tree(f"[bold]provenance of[/bold] {literal(node.location)}")
    _add(tree, node)
    return tree


def render_text(node: ProvenanceNode, *, width: int = 160) -> str:
    """The tree as plain text (no colours), e.g. for logs and tests."""
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(render_tree(node))
    return captured.get()
