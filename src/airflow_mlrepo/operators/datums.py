"""Datum pipelines: Pachyderm's datums on Airflow + lakeFS (docs/concepts/datums.md).

:func:`datum_pipeline` adds a task group of three tasks to a DAG:

``plan`` (:class:`LakeFSDatumPlanOperator`)
    Pins the cut inputs, the model and any cross inputs; finds the last output this pipeline
    committed on the target branch and diffs the input commit recorded there against the pinned
    one (:mod:`airflow_mlrepo.changes`: the cost follows the change). Added and changed datums are
    processed, datums whose files are gone are deleted; a changed model, image, command, parameters
    or spec (or ``reprocess_spec="every_job"``, or no earlier output) means every datum. The
    datums to process are cut into batches (``datums_per_task``).
``process`` (:class:`LakeFSDatumBatchOperator`, one mapped task per batch)
    A :class:`~airflow_mlrepo.operators.pod.LakeFSPodOperator` (Kubernetes pod or local process):
    its own attempt branch from the target head the plan saw, the batch's old outputs cleared, the
    container run with ``MLREPO_DATUMS``, the branch committed with the batch's provenance. No
    merge. A failed attempt deletes its branch; Airflow retries that batch alone.
``commit`` (:class:`LakeFSDatumCommitOperator`, runs when every batch is done)
    Merges every batch branch into a branch of its own, deletes the outputs of deleted datums,
    and merges that into the target in **one** commit whose provenance lists the pins, the counts
    and every batch task's run; then deletes every branch of the run. If any batch failed, or the
    target's output changed since the plan, it deletes the run's branches and fails: the target is
    untouched.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, TaskGroup
from mlrepo_sdk import contract

from airflow_mlrepo.changes import ADDED, REMOVED, changed_paths
from airflow_mlrepo.datums import (
    REPROCESS_EVERY_JOB,
    WHOLE_INPUT,
    Datum,
    DatumInput,
    DatumSpec,
    DatumSpecError,
    Glob,
    batches,
    check_reprocess,
    config_fingerprint,
    datum_output_prefix,
    group_datums,
    relative_to,
    touched_ids,
)
from airflow_mlrepo.exceptions import InvalidLakeFSLocationError, MlRepoError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from airflow_mlrepo.links.lakefs import LakeFSOutputCommitLink, record_output_commit_url
from airflow_mlrepo.locations import BRANCH_RE, LakeFSLocation, is_commit_id
from airflow_mlrepo.operators import attempts
from airflow_mlrepo.operators.attempts import datum_run_key, datum_run_prefix
from airflow_mlrepo.operators.inference import MODEL_INPUT, MODEL_LATEST, model_policy, pin_model
from airflow_mlrepo.operators.pod import AttemptPlan, LakeFSPodOperator
from airflow_mlrepo.pinning import PinnedInput, check_against_first_attempt, pin_input
from airflow_mlrepo.provenance import FINGERPRINT, airflow_task_url, build_provenance, fingerprint

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

#: Provenance keys of datum pipelines (on the target commit unless noted).
PIPELINE = "mlrepo.datums.pipeline"
CONFIG = "mlrepo.datums.config"
SPEC = "mlrepo.datums.spec"
MODE = "mlrepo.datums.mode"
REASON = "mlrepo.datums.reason"
REPROCESS = "mlrepo.datums.reprocess_spec"
PROCESSED = "mlrepo.datums.processed"
SKIPPED = "mlrepo.datums.skipped"
DELETED = "mlrepo.datums.deleted"
TOTAL = "mlrepo.datums.total"
BASE = "mlrepo.datums.base"
TASKS = "mlrepo.datums.tasks"
#: On batch commits: which batch, and the ids of its datums (JSON list).
BATCH = "mlrepo.datums.batch"
BATCH_IDS = "mlrepo.datums.ids"
#: On the deletion commit: the ids of the deleted datums (JSON list).
DELETED_IDS = "mlrepo.datums.deleted_ids"

MODE_INCREMENTAL = "incremental"
MODE_FULL = "full"
#: How far back on the target branch the plan looks for this pipeline's last output.
BASE_LOOKBACK = 200
#: The plan (counts, pins, mode) is pushed under this XCom key; the batches are the return value
#: (Airflow maps only over return values).
PLAN_XCOM_KEY = "plan"
#: Largest ``MLREPO_DATUMS`` a task hands its container (Linux limits one variable to 128 KiB).
MAX_DATUMS_ENV_BYTES = 120_000
_DELETE_PAGE = 1000


def _pin_from_dict(name: str, data: Mapping[str, Any]) -> PinnedInput:
    source = LakeFSLocation(str(data["repository"]), str(data["source_ref"]), str(data["path"]))
    return PinnedInput(name, source, str(data["commit_id"]), str(data["rule"]), data.get("as_of"))


def _parse(uri: str, what: str, task_id: str) -> LakeFSLocation:
    try:
        return LakeFSLocation.parse(uri)
    except InvalidLakeFSLocationError as exc:
        raise InvalidLakeFSLocationError(f"Task '{task_id}', {what}: {exc}") from exc


def _target(uri: str, task_id: str) -> LakeFSLocation:
    target = _parse(uri, "output", task_id)
    if is_commit_id(target.ref) or not BRANCH_RE.match(target.ref):
        raise InvalidLakeFSLocationError(
            f"Task '{task_id}': output {target.uri} must be on a branch, not on a commit, tag or ref ({target.ref!r})"
        )
    return target


def delete_prefixes(hook: LakeFSHook, repository: str, branch: str, prefixes: Iterable[str]) -> int:
    """Stage the deletion of every object under each prefix; one list per prefix, one delete per 1,000."""
    from lakefs_sdk.models.path_list import PathList

    paths: list[str] = []
    for prefix in prefixes:
        directory = prefix.endswith("/") or not prefix
        paths.extend(
            obj.path for obj in hook.list_objects(repository, branch, prefix) if directory or obj.path == prefix
        )
    for start in range(0, len(paths), _DELETE_PAGE):
        hook._call(
            "delete objects",
            hook.client.objects_api.delete_objects,
            repository,
            branch,
            PathList.from_dict({"paths": paths[start : start + _DELETE_PAGE]}),
            repository=repository,
            ref=branch,
        )
    return len(paths)


def delete_run_branches(hook: LakeFSHook, repository: str, run_key: str, *, log: Any) -> int:
    """Delete every branch of one pipeline run (its batches and its merge branch)."""
    names = hook.list_branches(repository, datum_run_prefix(run_key))
    for name in names:
        hook.delete_branch(repository, name, missing_ok=True)
    if names:
        log.info("Deleted %d branch(es) of this run: %s", len(names), ", ".join(names))
    return len(names)


# --------------------------------------------------------------------------- spec


def pfs(name: str, location: str, *, glob: str = "/*", join_on: str | None = None) -> DatumInput:
    """A cut input, named as Pachyderm's ``pfs`` input: ``location`` is ``lakefs://repo/branch/path``."""
    return DatumInput(name=name, location=location, glob=glob, join_on=join_on)


def join(left: DatumInput, right: DatumInput) -> tuple[DatumInput, DatumInput]:
    """Pachyderm's ``join``: datums of ``left`` and ``right`` whose ``join_on`` values are equal."""
    return (left, right)


# --------------------------------------------------------------------------- plan


@dataclass
class _Side:
    name: str
    location: LakeFSLocation
    pin: PinnedInput
    glob: Glob


class LakeFSDatumPlanOperator(BaseOperator):
    """Decide which datums this run processes and which it deletes (see the module docstring).

    Returns the batches (the mapped ``process`` task expands over them); pushes the plan (counts,
    pins, mode and why) under the XCom key ``plan`` for the ``commit`` task.
    """

    template_fields: Sequence[str] = (
        "input_locations",
        "cross",
        "model",
        "model_version",
        "output_location",
        "hyperparameters",
        "reprocess_spec",
    )
    template_fields_renderers = {"hyperparameters": "json", "input_locations": "json", "cross": "json"}
    ui_color = "#e6f2ff"

    def __init__(
        self,
        *,
        input: DatumInput | tuple[DatumInput, DatumInput],
        output_location: str,
        model: str | None = None,
        model_version: str = MODEL_LATEST,
        cross: Mapping[str, str] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        image: str | None = None,
        command: Sequence[str] = (),
        reprocess_spec: str = "until_success",
        datums_per_task: int = 10,
        pipeline: str | None = None,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        cut = (input,) if isinstance(input, DatumInput) else tuple(input)
        self.cross = dict(cross or {})
        reserved = {MODEL_INPUT} & ({i.name for i in cut} | set(self.cross))
        if model and reserved:
            raise DatumSpecError(f"Task '{self.task_id}': the input name '{MODEL_INPUT}' is reserved for the model")
        self.spec = DatumSpec(
            inputs=tuple(DatumInput(i.name, "", i.glob, i.join_on) for i in cut),
            cross=(*self.cross, *((MODEL_INPUT,) if model else ())),
        )
        self.input_locations = {i.name: i.location for i in cut}
        self.model = model
        self.model_version = model_version
        self.output_location = output_location
        self.hyperparameters = dict(hyperparameters or {})
        self.image = image
        self.command = list(command)
        self.reprocess_spec = reprocess_spec
        if datums_per_task < 1:
            raise DatumSpecError(f"Task '{self.task_id}': datums_per_task must be at least 1, got {datums_per_task}")
        self.datums_per_task = datums_per_task
        self.pipeline = pipeline
        self.lakefs_conn_id = lakefs_conn_id

    @cached_property
    def lakefs_hook(self) -> LakeFSHook:
        return LakeFSHook(self.lakefs_conn_id)

    @property
    def pipeline_name(self) -> str:
        return self.pipeline or self.task_id.rsplit(".", 1)[0]

    def remove_leftover_runs(self, context: Context, repository: str, *, own_run_key: str) -> list[str]:
        """Delete the branches finished runs of this pipeline left in ``repository`` (a killed batch or commit).

        A run's branches are leftovers once its commit task is finished (:mod:`.attempts`); the
        states come from Airflow through the Task SDK, and only when a branch of another run exists
        (usually none: one lakeFS list call, no Airflow call). Best effort: a failure here is logged
        and never fails the task.
        """
        ti = context["ti"]
        try:
            names = [
                name
                for name in self.lakefs_hook.list_branches(repository, attempts.DATUM_RUN_BRANCH_PREFIX)
                if not name.startswith(datum_run_prefix(own_run_key))
            ]
            dag = context.get("dag")
            commit_ids = [
                task.task_id
                for task in (dag.tasks if dag is not None else [])
                if isinstance(task, LakeFSDatumCommitOperator) and task.plan_task_id == self.task_id
            ]
            if not names or len(commit_ids) != 1:
                return []
            [commit_id] = commit_ids
            states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[commit_id])
            runs = [
                attempts.KnownDatumRun(
                    datum_run_key(ti.dag_id, run_id, self.pipeline_name),
                    ti.dag_id,
                    run_id,
                    self.pipeline_name,
                    attempts.state_name(by_task.get(commit_id)),
                )
                for run_id, by_task in states.items()
            ]
            verdicts = attempts.judge(names, [ti.dag_id], [], every_dag_known=False, datum_runs=runs)
            return attempts.delete_leftovers(self.lakefs_hook, repository, verdicts, self.log)
        except Exception:
            self.log.warning(
                "Could not remove leftover datum branches in %s; `mlrepo cleanup attempts` can",
                repository,
                exc_info=True,
            )
            return []

    def execute(self, context: Context) -> list[dict[str, Any]]:
        hook = self.lakefs_hook
        ti = context["ti"]
        reprocess = check_reprocess(str(self.reprocess_spec))
        target = _target(self.output_location, self.task_id)
        if not hook.branch_exists(target.repository, target.ref):
            raise InvalidLakeFSLocationError(
                f"Task '{self.task_id}': output branch '{target.ref}' does not exist in repository "
                f"'{target.repository}' (or it is a tag): create the branch first"
            )
        sides = self._pin_sides(context)
        pins = {side.name: side.pin for side in sides}
        for name, uri in sorted(self.cross.items()):
            pins[name] = pin_input(hook, name, _parse(uri, f"cross input '{name}'", self.task_id), context)
        if self.model:
            model = _parse(self.model, "model", self.task_id)
            pins[MODEL_INPUT] = pin_model(hook, model, self.model_version, context)
        check_against_first_attempt(context, pins)
        cross_commits = {name: pins[name].commit_id for name in self.spec.cross}
        config = config_fingerprint(
            spec=self.spec,
            cross_commits=cross_commits,
            output=target.uri,
            image=self.image,
            command=self.command,
            hyperparameters=self.hyperparameters,
        )
        run_key = datum_run_key(ti.dag_id, context["run_id"], self.pipeline_name)
        # a fresh plan invalidates whatever an earlier try of this run left behind
        delete_run_branches(hook, target.repository, run_key, log=self.log)
        self.remove_leftover_runs(context, target.repository, own_run_key=run_key)
        head = hook.get_branch_head(target.repository, target.ref)
        base = self._last_output(target)
        last_touch = next(
            hook.log_commits(
                target.repository, head, prefixes=[target.path] if target.path else None, amount=1, first_parent=True
            ),
            None,
        )
        reason = self._full_reason(reprocess, base, last_touch, config, pins, sides)
        if reason is None:
            assert base is not None
            processed, deleted, total = self._incremental(sides, base)
            mode = MODE_INCREMENTAL
            reason = f"diff against the input of output commit {base.id}"
        else:
            processed, deleted, total = self._full(sides)
            mode = MODE_FULL
        self.log.info(
            "Datums (%s: %s): %d to process, %d deleted, %d skipped of %d",
            mode,
            reason,
            len(processed),
            len(deleted),
            total - len(processed),
            total,
        )
        cut_batches = batches(processed, self.datums_per_task)
        pin_dicts = {name: pin.to_dict() for name, pin in sorted(pins.items())}
        batch_docs = [
            {
                "index": index,
                "run_key": run_key,
                "pipeline": self.pipeline_name,
                "base_commit": head,
                "target": target.uri,
                "pins": pin_dicts,
                "datums": [datum.to_dict() for datum in batch],
            }
            for index, batch in enumerate(cut_batches)
        ]
        plan = {
            "pipeline": self.pipeline_name,
            "run_key": run_key,
            "mode": mode,
            "reason": reason,
            "reprocess_spec": reprocess,
            "target": target.uri,
            "base_commit": head,
            "base_output": base.id if base is not None else None,
            "output_head": last_touch.id if last_touch is not None else None,
            "config": config,
            "spec": self.spec.describe(),
            "pins": pin_dicts,
            "model_policy": model_policy(self.model_version) if self.model else None,
            "processed": len(processed),
            "deleted": sorted(deleted),
            "total": total,
            "skipped": total - len(processed),
            "batches": len(batch_docs),
            "clear_stale": mode == MODE_FULL,
            "id_depth": 1 if self.spec.is_join else max(1, self.spec.glob(self.spec.inputs[0].name).depth),
        }
        ti.xcom_push(key=PLAN_XCOM_KEY, value=plan)
        return batch_docs

    # ----------------------------------------------------------------- helpers

    def _pin_sides(self, context: Context) -> list[_Side]:
        sides = []
        for datum_input in self.spec.inputs:
            uri = self.input_locations[datum_input.name]
            location = _parse(uri, f"input '{datum_input.name}'", self.task_id)
            pin = pin_input(self.lakefs_hook, datum_input.name, location, context)
            sides.append(_Side(datum_input.name, location, pin, Glob.parse(datum_input.glob)))
        return sides

    def _last_output(self, target: LakeFSLocation) -> LakeFSCommit | None:
        for commit in self.lakefs_hook.log_commits(
            target.repository, target.ref, amount=BASE_LOOKBACK, first_parent=True
        ):
            if commit.metadata.get(PIPELINE) == self.pipeline_name and CONFIG in commit.metadata:
                return commit
        return None

    def _full_reason(
        self,
        reprocess: str,
        base: LakeFSCommit | None,
        last_touch: LakeFSCommit | None,
        config: str,
        pins: Mapping[str, PinnedInput],
        sides: Sequence[_Side],
    ) -> str | None:
        """Why every datum must be processed, or None when the diff decides."""
        if reprocess == REPROCESS_EVERY_JOB:
            return "reprocess_spec every_job"
        if base is None:
            return "no earlier output of this pipeline on the target branch"
        if last_touch is not None and last_touch.metadata.get(PIPELINE) != self.pipeline_name:
            return f"the output was changed by commit {last_touch.id}, which this pipeline did not make"
        meta = base.metadata
        if meta.get(CONFIG) != config:
            if MODEL_INPUT in pins and meta.get("mlrepo.model.commit_id") != pins[MODEL_INPUT].commit_id:
                return (
                    f"the model changed ({meta.get('mlrepo.model.commit_id', '?')[:12]} -> "
                    f"{pins[MODEL_INPUT].commit_id[:12]})"
                )
            return "the image, command, parameters, cross inputs or datum spec changed"
        for side in sides:
            recorded = meta.get(f"mlrepo.input.{side.name}")
            if recorded is None:
                return f"the last output records no input '{side.name}'"
            previous = LakeFSLocation.parse(recorded)
            if (previous.repository, previous.path) != (side.location.repository, side.location.path):
                return f"input '{side.name}' moved from {previous.uri} to {side.pin.location.uri}"
        return None

    def _full(self, sides: Sequence[_Side]) -> tuple[list[Datum], list[str], int]:
        hook = self.lakefs_hook
        listed = {
            side.name: (
                side.location.path,
                [
                    obj.path
                    for obj in hook.list_objects(side.location.repository, side.pin.commit_id, side.location.path)
                ],
            )
            for side in sides
        }
        datums = list(group_datums(self.spec, listed).values())
        return datums, [], len(datums)

    def _incremental(self, sides: Sequence[_Side], base: LakeFSCommit) -> tuple[list[Datum], list[str], int]:
        hook = self.lakefs_hook
        previous = {side.name: LakeFSLocation.parse(base.metadata[f"mlrepo.input.{side.name}"]).ref for side in sides}
        touched: set[str] = set()
        change_types: dict[str, dict[str, str]] = {}
        for side in sides:
            changes = list(
                changed_paths(
                    hook, side.location.repository, previous[side.name], side.pin.commit_id, side.location.path
                )
            )
            touched |= touched_ids(self.spec, side.name, side.location.path, (c.path for c in changes))
            change_types[side.name] = {c.path: c.type for c in changes}
        processed: list[Datum] = []
        deleted: list[str] = []
        added = 0
        for datum_id in sorted(touched):
            now = {
                side.name: self._files(side, datum_id, side.pin.commit_id, change_types[side.name], now=True)
                for side in sides
            }
            before = {
                side.name: self._files(side, datum_id, previous[side.name], change_types[side.name], now=False)
                for side in sides
            }
            exists_now = all(now.values())
            existed = all(before.values())
            if exists_now:
                processed.append(Datum(datum_id, now))
                added += 0 if existed else 1
            elif existed:
                deleted.append(datum_id)
        total = int(base.metadata.get(TOTAL, "0")) + added - len(deleted)
        return processed, deleted, total

    def _files(self, side: _Side, datum_id: str, commit_id: str, changes: Mapping[str, str], *, now: bool) -> list[str]:
        """The files of datum ``datum_id`` on one side at ``commit_id`` (no call for a changed file datum)."""
        prefix = side.location.path
        base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        if not self.spec.is_join:
            if datum_id == WHOLE_INPUT:
                candidates = base
            else:
                path = base + datum_id
                if path in changes:
                    # a file datum the diff already describes: gone now if removed, absent before if added
                    gone = changes[path] == (REMOVED if now else ADDED)
                    return [] if gone else [path]
                candidates = path + "/"
        else:
            candidates = base + _literal_prefix(side.glob, self.spec, side.name, datum_id)
        hook = self.lakefs_hook
        found = []
        for obj in hook.list_objects(side.location.repository, commit_id, candidates):
            relative = relative_to(prefix, obj.path)
            hit = side.glob.datum_of(relative) if relative is not None else None
            if hit is not None and self.spec.datum_id(side.name, hit[0], hit[1]) == datum_id:
                found.append(obj.path)
        return found


def _literal_prefix(glob: Glob, spec: DatumSpec, name: str, datum_id: str) -> str:
    """The longest literal path prefix where a join datum's files on one side can be, given its join value."""
    datum_input = next(i for i in spec.inputs if i.name == name)
    assert datum_input.join_on is not None
    # one capture referenced alone ("$1"): substitute it into the pattern
    if re.fullmatch(r"\$1", datum_input.join_on) and glob.captures == 1:
        pattern = re.sub(r"\([^)]*\)", lambda _: datum_id.replace("\\", ""), glob.pattern.strip("/"), count=1)
    else:
        pattern = glob.pattern.strip("/")
    literal = re.split(r"[*?\[(]", pattern, maxsplit=1)[0]
    return literal


# --------------------------------------------------------------------------- process


class LakeFSDatumBatchOperator(LakeFSPodOperator):
    """One batch of datums in one container (a mapped task of :func:`datum_pipeline`).

    :param batch: the batch the plan made (mapped: ``.expand(batch=plan.output)``).
    Everything else is :class:`~airflow_mlrepo.operators.pod.LakeFSPodOperator`; the inputs and the
    model come pinned from the plan, so every batch of a run reads the same commits.
    """

    output_kind = "predictions"
    model_input: str | None = MODEL_INPUT

    def __init__(self, *, batch: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    def _batch(self) -> Mapping[str, Any]:
        if not isinstance(self.batch, Mapping) or "datums" not in self.batch:
            raise MlRepoError(f"Task '{self.task_id}' got no datum batch from the plan: {self.batch!r}")
        return self.batch

    def plan(self, context: Context) -> AttemptPlan:
        batch = self._batch()
        ti = context["ti"]
        target = LakeFSLocation.parse(str(batch["target"]))
        pins = {name: _pin_from_dict(name, data) for name, data in batch["pins"].items()}
        self.output_location = target.uri
        self.model_input = MODEL_INPUT if MODEL_INPUT in pins else None
        stale_prefix = f"{datum_run_prefix(str(batch['run_key']))}b{int(batch['index'])}-"
        return AttemptPlan(
            target=target,
            pins=pins,
            attempt_branch=f"{stale_prefix}try{ti.try_number}",
            stale_prefix=stale_prefix,
            fingerprint=fingerprint(
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                run_id=context["run_id"],
                map_index=int(batch["index"]),
                pins=pins,
                output=target,
                image=self.image,
                command=self.command,
                hyperparameters={**self.hyperparameters, "datums": [d["id"] for d in batch["datums"]]},
            ),
        )

    def find_existing_output(self, plan: AttemptPlan) -> str | None:
        return None

    def datums(self) -> list[Datum]:
        return [Datum.from_dict(d) for d in self._batch()["datums"]]

    def attempt_source(self, plan: AttemptPlan) -> str:
        """The target head the plan diffed against, so every batch of the run starts from the same commit."""
        return str(self._batch()["base_commit"])

    def clear_attempt_output(self, plan: AttemptPlan) -> int:
        """Clear only this batch's datums' old outputs."""
        prefixes = [datum_output_prefix(plan.target.path, d.id) for d in self.datums()]
        return delete_prefixes(self.lakefs_hook, plan.target.repository, plan.attempt_branch, prefixes)

    def contract_environment(self, context: Context, plan: AttemptPlan) -> dict[str, str]:
        env = super().contract_environment(context, plan)
        out = plan.attempt_output
        env[contract.DATUMS] = json.dumps(
            [
                {
                    **datum.to_dict(),
                    "output": LakeFSLocation(out.repository, out.ref, datum_output_prefix(out.path, datum.id)).uri,
                }
                for datum in self.datums()
            ],
            sort_keys=True,
        )
        if len(env[contract.DATUMS]) > MAX_DATUMS_ENV_BYTES:
            raise MlRepoError(
                f"Task '{self.task_id}': {len(self.datums())} datums make {contract.DATUMS} "
                f"{len(env[contract.DATUMS])} bytes, over {MAX_DATUMS_ENV_BYTES}: lower datums_per_task"
            )
        return env

    def publish(self, context: Context, plan: AttemptPlan) -> dict[str, Any]:
        """Commit the batch on its attempt branch (the ``commit`` task merges it)."""
        hook = self.lakefs_hook
        ti = context["ti"]
        metadata = self.provenance(context, plan)
        metadata[PIPELINE] = str(self._batch()["pipeline"])
        metadata[BATCH] = str(self._batch()["index"])
        metadata[BATCH_IDS] = json.dumps([d.id for d in self.datums()])
        try:
            commit = hook.commit(
                plan.target.repository,
                plan.attempt_branch,
                f"datums {self._batch()['index']} ({len(self.datums())}) from {ti.dag_id}.{ti.task_id}",
                metadata,
                allow_empty=True,
            )
        except BaseException:
            self.discard_attempt(plan)
            raise
        self.output_commit_id = commit.id
        self.pinned_inputs = plan.pins
        self.log.info("Batch committed on %s: %s", plan.attempt_branch, commit.id)
        return {
            "index": int(self._batch()["index"]),
            "branch": plan.attempt_branch,
            "commit_id": commit.id,
            "map_index": int(ti.map_index if ti.map_index is not None else -1),
            "try_number": int(ti.try_number),
            "datums": len(self.datums()),
        }


# --------------------------------------------------------------------------- commit


class LakeFSDatumCommitOperator(BaseOperator):
    """Publish every batch of the run in one commit on the target branch, or nothing (see the module docstring)."""

    template_fields: Sequence[str] = ("commit_message",)
    operator_extra_links = (LakeFSOutputCommitLink(),)
    ui_color = "#e6ffe6"
    model_input: str | None = MODEL_INPUT

    def __init__(
        self,
        *,
        plan_task_id: str,
        process_task_id: str,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        merge_strategy: str | None = None,
        commit_message: str | None = None,
        output_kind: str = "predictions",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.process_task_id = process_task_id
        self.lakefs_conn_id = lakefs_conn_id
        self.merge_strategy = merge_strategy
        self.commit_message = commit_message
        self.output_kind = output_kind
        #: For lineage: what the run pinned, published and counted.
        self.pinned_inputs: dict[str, PinnedInput] = {}
        self.output_commit_id: str | None = None
        #: What the extra link shows (None until this attempt published).
        self.output_commit_url: str | None = None
        self.output_location = ""
        self.counts: dict[str, Any] = {}

    @cached_property
    def lakefs_hook(self) -> LakeFSHook:
        return LakeFSHook(self.lakefs_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id, key=PLAN_XCOM_KEY)
        if not isinstance(plan, Mapping):
            raise MlRepoError(f"Task '{self.task_id}': the plan task '{self.plan_task_id}' left no plan (did it fail?)")
        hook = self.lakefs_hook
        target = LakeFSLocation.parse(str(plan["target"]))
        self.output_location = target.uri
        pins = {name: _pin_from_dict(name, data) for name, data in plan["pins"].items()}
        self.pinned_inputs = pins
        self.model_input = MODEL_INPUT if MODEL_INPUT in pins else None
        run_key = str(plan["run_key"])
        run_fingerprint = hashlib.sha256(
            json.dumps(
                {"run": [ti.dag_id, context["run_id"], plan["pipeline"]], "plan": plan}, sort_keys=True, default=str
            ).encode()
        ).hexdigest()
        existing = self._existing(target, run_fingerprint)
        if existing is not None:
            self.log.info("This run already published exactly this plan: %s; not publishing again", existing)
            delete_run_branches(hook, target.repository, run_key, log=self.log)
            return self._finish(context, target, existing, plan, reused=True)
        try:
            batches_done = self._batches(target, plan)
            self._check_target(target, plan)
            merge_branch = f"{datum_run_prefix(run_key)}merge-try{ti.try_number}"
            hook.create_branch(target.repository, merge_branch, str(plan["base_commit"]))
            for batch in batches_done:
                hook.merge(
                    target.repository,
                    batch["branch"],
                    merge_branch,
                    message=f"datums batch {batch['index']}",
                    allow_empty=True,
                )
            batch_docs = ti.xcom_pull(task_ids=self.plan_task_id) or []
            deleted = self._delete_outputs(hook, target, merge_branch, plan, batch_docs)
            metadata = self._provenance(context, plan, pins, batches_done, run_fingerprint, deleted)
            message = self.commit_message or (
                f"{self.output_kind} from {ti.dag_id}.{plan['pipeline']}: {plan['processed']} datums processed, "
                f"{plan['skipped']} skipped, {len(plan['deleted'])} deleted"
            )
            commit_id = hook.merge(
                target.repository,
                merge_branch,
                target.ref,
                message=message,
                metadata=metadata,
                strategy=self.merge_strategy,
                allow_empty=True,
            )
        finally:
            delete_run_branches(hook, target.repository, run_key, log=self.log)
        self.log.info("Published in one commit: %s", target.with_ref(commit_id))
        return self._finish(context, target, commit_id, plan, reused=False)

    def _existing(self, target: LakeFSLocation, run_fingerprint: str) -> str | None:
        for commit in self.lakefs_hook.log_commits(
            target.repository, target.ref, amount=BASE_LOOKBACK, first_parent=True
        ):
            if commit.metadata.get(FINGERPRINT) == run_fingerprint:
                return commit.id
        return None

    def _batches(self, target: LakeFSLocation, plan: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The committed branch of every batch; fail (the target untouched) if any batch has none."""
        hook = self.lakefs_hook
        expected = int(plan["batches"])
        found: dict[int, dict[str, Any]] = {}
        for name in hook.list_branches(target.repository, datum_run_prefix(str(plan["run_key"]))):
            match = re.search(r"-b(\d+)-try(\d+)$", name)
            if match is None:
                continue
            index, try_number = int(match.group(1)), int(match.group(2))
            head = hook.get_commit(target.repository, name)
            if head.metadata.get(BATCH) != str(index):
                continue  # an attempt that never committed (its worker was killed)
            if index not in found or found[index]["try_number"] < try_number:
                found[index] = {
                    "index": index,
                    "branch": name,
                    "commit_id": head.id,
                    "try_number": try_number,
                    "map_index": int(head.metadata.get("mlrepo.map_index", index)),
                    "datums": len(json.loads(head.metadata.get(BATCH_IDS, "[]"))),
                    "airflow_url": head.metadata.get("::lakefs::Airflow::url[url:ui]", ""),
                }
        missing = sorted(set(range(expected)) - set(found))
        if missing:
            raise MlRepoError(
                f"Task '{self.task_id}': {len(missing)} of {expected} datum batches did not succeed "
                f"(map indexes {', '.join(map(str, missing[:20]))}); nothing was published, {target} is untouched"
            )
        return [found[index] for index in range(expected)]

    def _check_target(self, target: LakeFSLocation, plan: Mapping[str, Any]) -> None:
        hook = self.lakefs_hook
        head = hook.get_branch_head(target.repository, target.ref)
        last_touch = next(
            hook.log_commits(
                target.repository, head, prefixes=[target.path] if target.path else None, amount=1, first_parent=True
            ),
            None,
        )
        current = last_touch.id if last_touch is not None else None
        if current != plan["output_head"]:
            raise MlRepoError(
                f"Task '{self.task_id}': {target} changed since this run planned its datums (last change "
                f"{plan['output_head']} then, {current} now); nothing was published: run it again"
            )

    def _delete_outputs(
        self,
        hook: LakeFSHook,
        target: LakeFSLocation,
        branch: str,
        plan: Mapping[str, Any],
        batch_docs: Sequence[Mapping[str, Any]],
    ) -> int:
        """Delete the outputs of deleted datums (a full recompute: of every datum not written now)."""
        deleted = list(plan["deleted"])
        if plan.get("clear_stale"):
            kept = {datum_output_prefix(target.path, d["id"]) for doc in batch_docs for d in doc["datums"]}
            depth = int(plan.get("id_depth", 1))
            stale: set[str] = set()
            for obj in hook.list_objects(target.repository, branch, target.path):
                relative = relative_to(target.path, obj.path)
                if relative is None or target.path in kept:
                    continue
                parts = relative.split("/")
                if not any(datum_output_prefix(target.path, "/".join(parts[:n])) in kept for n in range(1, len(parts))):
                    stale.add("/".join(parts[:depth]) if len(parts) > depth else relative)
            deleted = sorted(stale)
        removed = 0
        if deleted:
            removed = delete_prefixes(
                hook, target.repository, branch, [datum_output_prefix(target.path, d) for d in deleted]
            )
        if removed:
            hook.commit(
                target.repository,
                branch,
                f"delete the outputs of {len(deleted)} datum(s)",
                {DELETED_IDS: json.dumps(deleted[:1000]), DELETED: str(len(deleted))},
            )
        return len(deleted)

    def _provenance(
        self,
        context: Context,
        plan: Mapping[str, Any],
        pins: Mapping[str, PinnedInput],
        batches_done: Sequence[Mapping[str, Any]],
        run_fingerprint: str,
        deleted: int,
    ) -> dict[str, str]:
        from airflow.sdk.configuration import conf

        ti = context["ti"]
        dag_run = context.get("dag_run")
        base_url = conf.get("api", "base_url", fallback="http://localhost:8080")
        total = int(plan["total"]) if plan["mode"] == MODE_INCREMENTAL else int(plan["processed"])
        metadata = build_provenance(
            output_kind=self.output_kind,
            pins=pins,
            model_input=self.model_input,
            model_policy=plan.get("model_policy"),
            dag_id=ti.dag_id,
            run_id=context["run_id"],
            task_id=ti.task_id,
            map_index=-1,
            try_number=ti.try_number,
            run_type=str(getattr(dag_run, "run_type", "") or "") or None,
            logical_date=context.get("logical_date"),
            data_interval_start=context.get("data_interval_start"),
            data_interval_end=context.get("data_interval_end"),
            image=None,
            command=[],
            runner="datums",
            hyperparameters={},
            fingerprint_value=run_fingerprint,
            airflow_url=airflow_task_url(base_url, ti.dag_id, context["run_id"], ti.task_id, -1),
            openlineage_run_id=None,
        )
        metadata.update(
            {
                PIPELINE: str(plan["pipeline"]),
                CONFIG: str(plan["config"]),
                SPEC: json.dumps(plan["spec"], sort_keys=True),
                MODE: str(plan["mode"]),
                REASON: str(plan["reason"]),
                REPROCESS: str(plan["reprocess_spec"]),
                PROCESSED: str(plan["processed"]),
                SKIPPED: str(plan["skipped"]),
                DELETED: str(deleted),
                TOTAL: str(total),
                BASE: str(plan.get("base_output") or ""),
                TASKS: json.dumps(
                    [
                        {k: b[k] for k in ("index", "map_index", "try_number", "commit_id", "datums")}
                        for b in batches_done
                    ]
                ),
            }
        )
        self.counts = {
            "processed": int(plan["processed"]),
            "skipped": int(plan["skipped"]),
            "deleted": deleted,
            "total": total,
            "tasks": len(batches_done),
            "mode": str(plan["mode"]),
            "reason": str(plan["reason"]),
        }
        return metadata

    def _finish(
        self, context: Context, target: LakeFSLocation, commit_id: str, plan: Mapping[str, Any], *, reused: bool
    ) -> dict[str, Any]:
        settings = self.lakefs_hook.settings
        record_output_commit_url(
            self, context["ti"], f"{settings.browser_url}/repositories/{target.repository}/commits/{commit_id}"
        )
        self.output_commit_id = commit_id
        if not self.counts:
            self.counts = {
                "processed": int(plan["processed"]),
                "skipped": int(plan["skipped"]),
                "deleted": len(plan["deleted"]),
                "total": int(plan["total"]),
                "mode": str(plan["mode"]),
            }
        return {
            "commit_id": commit_id,
            "output": target.with_ref(commit_id).uri,
            "mode": plan["mode"],
            "reason": plan["reason"],
            **{k: v for k, v in self.counts.items() if k not in ("mode", "reason")},
            "reused": reused,
        }

    # ------------------------------------------------------------------ lineage

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        from airflow_mlrepo.lineage import operator_lineage

        return operator_lineage.datums_on_complete(self)


# --------------------------------------------------------------------------- factory


def datum_pipeline(
    *,
    group_id: str,
    input: DatumInput | tuple[DatumInput, DatumInput],
    output_location: str,
    image: str,
    cmds: Sequence[str],
    arguments: Sequence[str] = (),
    model: str | None = None,
    model_version: str = MODEL_LATEST,
    cross: Mapping[str, str] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    reprocess_spec: str = "until_success",
    datums_per_task: int = 10,
    parallelism: int | None = None,
    pool: str | None = None,
    retries: int | None = None,
    lakefs_conn_id: str = LakeFSHook.default_conn_name,
    runner: str | None = None,
    namespace: str | None = None,
    **pod_kwargs: Any,
) -> TaskGroup:
    """A ``plan >> process (mapped) >> commit`` task group: Pachyderm's pipeline with datums.

    :param input: ``pfs(name, location, glob=...)``, or ``join(pfs(...), pfs(...))``.
    :param model: the model location: a cross input every datum sees whole (``model_version`` as on
        :class:`~airflow_mlrepo.operators.inference.LakeFSInferenceOperator`).
    :param cross: other inputs every datum sees whole, ``{name: location}``.
    :param reprocess_spec: ``until_success`` (default: skip datums already processed with the same
        model, code and parameters) or ``every_job``. Templated.
    :param datums_per_task: datums per mapped task (Pachyderm's ``datums_per_worker`` batching).
    :param parallelism: most mapped tasks running at once in one run (``max_active_tis_per_dagrun``).
    :param pool: Airflow pool for the mapped tasks (a limit across runs and DAGs).
    :param retries: tries per batch beyond the first (default: the DAG's ``default_args``).
    The other keywords go to every mapped :class:`LakeFSDatumBatchOperator` (a KubernetesPodOperator).
    """
    with TaskGroup(group_id=group_id) as group:
        plan = LakeFSDatumPlanOperator(
            task_id="plan",
            input=input,
            output_location=output_location,
            model=model,
            model_version=model_version,
            cross=cross,
            hyperparameters=hyperparameters,
            image=image,
            command=[*cmds, *arguments],
            reprocess_spec=reprocess_spec,
            datums_per_task=datums_per_task,
            pipeline=group_id,
            lakefs_conn_id=lakefs_conn_id,
        )
        partial_kwargs: dict[str, Any] = {
            "task_id": "process",
            "image": image,
            "cmds": list(cmds),
            "arguments": list(arguments),
            "hyperparameters": dict(hyperparameters or {}),
            "output_location": output_location,
            "lakefs_conn_id": lakefs_conn_id,
            "runner": runner,
            **pod_kwargs,
        }
        if namespace is not None:
            partial_kwargs["namespace"] = namespace
        if parallelism is not None:
            partial_kwargs["max_active_tis_per_dagrun"] = parallelism
        if pool is not None:
            partial_kwargs["pool"] = pool
        if retries is not None:
            partial_kwargs["retries"] = retries
        process = LakeFSDatumBatchOperator.partial(**partial_kwargs).expand(batch=plan.output)
        commit = LakeFSDatumCommitOperator(
            task_id="commit",
            plan_task_id=plan.task_id,
            process_task_id=process.task_id,
            lakefs_conn_id=lakefs_conn_id,
            output_kind="predictions" if model else "output",
        )
        if retries is not None:
            commit.retries = retries
        plan >> process >> commit
    return group


__all__ = [
    "LakeFSDatumBatchOperator",
    "LakeFSDatumCommitOperator",
    "LakeFSDatumPlanOperator",
    "datum_pipeline",
    "join",
    "pfs",
]
