"""OpenLineage of the training and inference pod operators (``get_openlineage_facets_on_*``).

The openlineage provider's listener calls the operator's methods, which delegate here:

* **start** (before ``execute``): run facets only (hyperparameters, container image, the requested
  model policy). Inputs are not pinned yet, and Marquez links a reported input to the dataset's
  *current* version on arrival, so reporting unpinned datasets would record wrong versions.
* **complete**: inputs at their pinned commits, the output at the commit ``execute`` merged, each
  with ``version`` + ``lakefs_commit`` facets (``datasetType`` MODEL on models); how each input was
  pinned (the ``mlrepo_pins`` run facet); the model choice with its resolved commit. ``execute``
  records pins and output on the operator instance (``pinned_inputs``, ``output_commit_id``), which
  is the object the listener hands us.
* **failure**: the pinned inputs (if pinning got that far), no output: a failed attempt leaves the
  target branch untouched.

Each input's pin also names the run that wrote its commit (``producedBy``), read from the commit's
provenance metadata, so the outbox can re-register it in Marquez (:mod:`airflow_mlrepo.lineage.marquez`).

**No outputs that were not produced.** When an operator reports no datasets (START, or a FAIL before
pinning), the openlineage provider falls back to the task's Airflow ``outlets`` and reports each as an
output with no facets; Marquez makes such an output the dataset's current version (with no commit),
and a failed run leaves it there. So :func:`on_start` and :func:`on_failure` mark the operator's
``lakefs://`` outlets as not produced (:func:`outlet_not_produced`) and the Asset converter
(:func:`airflow_mlrepo.assets.lakefs.convert_asset_to_openlineage`) gives no dataset for them, which the
provider skips; :func:`on_complete` lifts the mark. The COMPLETE event reports the output itself, at
its commit.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from openlineage.client.facet_v2 import RunFacet, execution_parameters_run

from airflow_mlrepo.lineage.facets import (
    CONTAINER_FACET,
    MODEL_CHOICE_FACET,
    PRODUCER,
    LakeFSProducerRun,
    MlrepoContainerRunFacet,
    MlrepoModelChoiceRunFacet,
)
from airflow_mlrepo.lineage.naming import (
    branch_of,
    input_dataset,
    input_pin,
    output_dataset,
    pins_facet,
    producer_from_metadata,
)
from airflow_mlrepo.locations import LakeFSLocation, is_commit_id

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    from airflow_mlrepo.hooks.lakefs import LakeFSHook
    from airflow_mlrepo.lineage.facets import LakeFSInputPin
    from airflow_mlrepo.pinning import PinnedInput

log = logging.getLogger(__name__)


class LineageOperator(Protocol):
    """What the lineage of a pod operator reads from it (``LakeFSPodOperator`` and its subclasses).

    A protocol rather than the operator class: the operators import this module, and this module
    does not import them back.
    """

    @property
    def hyperparameters(self) -> dict[str, Any]: ...
    @property
    def effective_runner(self) -> str: ...
    @property
    def runner(self) -> str | None: ...
    @property
    def image(self) -> str | None: ...
    @property
    def output_kind(self) -> str: ...
    @property
    def output_location(self) -> str: ...
    @property
    def model_input(self) -> str | None: ...
    @property
    def lakefs_conn_id(self) -> str: ...


EXECUTION_PARAMETERS_FACET = "executionParameters"
#: how an inference operator's ``model_version`` maps to the policy names of the facet
_POLICY_LATEST = "latest"
_POLICY_AS_OF = "as_of"
_POLICY_EXPLICIT = "explicit"


def _operator_lineage(**kwargs: Any) -> OperatorLineage[Any, Any]:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(**kwargs)


def execution_parameters(hyperparameters: dict[str, Any]) -> execution_parameters_run.ExecutionParametersRunFacet:
    """Hyperparameters as the standard ``executionParameters`` run facet (values as JSON unless strings)."""
    parameters = [
        execution_parameters_run.ExecutionParameter(
            key=str(key), name=str(key), value=value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        )
        for key, value in sorted(hyperparameters.items())
    ]
    return execution_parameters_run.ExecutionParametersRunFacet(parameters=parameters, producer=PRODUCER)


def _model_location(operator: LineageOperator) -> LakeFSLocation | None:
    model = getattr(operator, "model", None)
    if not model:
        return None
    try:
        return LakeFSLocation.parse(str(model))
    except Exception:
        return None


def model_choice(operator: LineageOperator, pin: PinnedInput | None) -> MlrepoModelChoiceRunFacet | None:
    """The ``mlrepo_modelChoice`` facet of an inference operator (None for others)."""
    model = _model_location(operator)
    if model is None or operator.model_input is None:
        return None
    requested = str(getattr(operator, "model_version", None) or _POLICY_LATEST).strip()
    policy = requested if requested in (_POLICY_LATEST, _POLICY_AS_OF) else _POLICY_EXPLICIT
    return MlrepoModelChoiceRunFacet(
        policy=policy,
        requested=requested,
        model=model.uri,
        commitId=pin.commit_id if pin is not None else None,
        asOf=pin.as_of if pin is not None else None,
    )


def run_facets(operator: LineageOperator, pins: dict[str, PinnedInput]) -> dict[str, RunFacet]:
    facets: dict[str, RunFacet] = {}
    if operator.hyperparameters:
        facets[EXECUTION_PARAMETERS_FACET] = execution_parameters(operator.hyperparameters)
    try:
        runner = operator.effective_runner
    except Exception:
        runner = str(operator.runner or "")
    if operator.image:
        facets[CONTAINER_FACET] = MlrepoContainerRunFacet(
            image=str(operator.image), runner=runner, outputKind=operator.output_kind
        )
    choice = model_choice(operator, pins.get(operator.model_input) if operator.model_input else None)
    if choice is not None:
        facets[MODEL_CHOICE_FACET] = choice
    return facets


def _commit_facts(
    hook: LakeFSHook | None, repository: str, commit_id: str
) -> tuple[int | None, LakeFSProducerRun | None]:
    if hook is None:
        return None, None
    try:
        commit = hook.get_commit(repository, commit_id)
    except Exception as exc:
        log.debug("Could not read commit %s of lakeFS repository %s for lineage: %s", commit_id, repository, exc)
        return None, None
    return commit.creation_date, producer_from_metadata(commit.metadata)


def _lineage_hook(operator: LineageOperator) -> LakeFSHook | None:
    """A fresh hook on the settings ``execute`` already read (no connection lookup, no shared pool)."""
    from airflow_mlrepo.hooks.lakefs import LakeFSHook

    hook = operator.__dict__.get("lakefs_hook")
    if hook is None or "settings" not in hook.__dict__:
        return None
    return LakeFSHook.from_settings(hook.settings, operator.lakefs_conn_id)


def input_datasets(
    operator: LineageOperator, pins: dict[str, PinnedInput]
) -> tuple[list[InputDataset], dict[str, RunFacet]]:
    """The pinned inputs at their commits, and the ``mlrepo_pins`` run facet saying how each was pinned."""
    hook = _lineage_hook(operator)
    model = _model_location(operator)
    datasets = []
    chosen: list[LakeFSInputPin | None] = []
    for name, pin in sorted(pins.items()):
        is_model = name == operator.model_input
        fallback = model.ref if is_model and model is not None else None
        source = pin.source
        if is_model and model is not None and source.ref != model.ref:
            # an explicit model version (commit id or tag) is still a version of the model branch's dataset
            source = model
        try:
            branch = branch_of(source.ref, fallback)
        except ValueError:
            default_branch = _default_branch(hook, source.repository)
            if default_branch is None:
                log.warning("Input '%s' (%s) is a bare commit id: not reported to lineage", name, pin.location)
                continue
            branch = default_branch
        commit_time, produced_by = _commit_facts(hook, source.repository, pin.commit_id)
        datasets.append(input_dataset(source, branch=branch, commit_id=pin.commit_id, model=is_model))
        chosen.append(
            input_pin(
                source,
                branch=branch,
                commit_id=pin.commit_id,
                pin_rule=pin.rule,
                as_of=pin.as_of,
                commit_time=commit_time,
                produced_by=produced_by,
            )
        )
    return datasets, pins_facet(chosen)


def _default_branch(hook: LakeFSHook | None, repository: str) -> str | None:
    if hook is None:
        return None
    try:
        return hook.repository_default_branch(repository)
    except Exception:
        return None


def output_datasets(operator: LineageOperator) -> list[OutputDataset]:
    commit_id = getattr(operator, "output_commit_id", None)
    if not commit_id or not is_commit_id(str(commit_id)):
        return []
    target = LakeFSLocation.parse(operator.output_location)
    return [output_dataset(target, commit_id=str(commit_id), model=operator.output_kind == "model")]


def _pins(operator: LineageOperator) -> dict[str, PinnedInput]:
    return dict(getattr(operator, "pinned_inputs", None) or {})


#: URIs of ``lakefs://`` outlets whose task attempt (in this process) has not produced them.
_not_produced: set[str] = set()


def _outlet_uris(operator: Any) -> set[str]:
    uris = set()
    for outlet in getattr(operator, "outlets", None) or []:
        uri = getattr(outlet, "uri", None)
        if isinstance(uri, str) and uri.startswith("lakefs://"):
            uris.add(uri)
    return uris


def outlet_not_produced(uri: str) -> bool:
    """Whether a ``lakefs://`` Asset is an outlet of a task attempt that has not produced it (yet)."""
    return uri in _not_produced


def on_start(operator: LineageOperator) -> OperatorLineage[Any, Any]:
    _not_produced.update(_outlet_uris(operator))
    return _operator_lineage(run_facets=run_facets(operator, {}))


def on_complete(operator: LineageOperator) -> OperatorLineage[Any, Any]:
    _not_produced.difference_update(_outlet_uris(operator))
    pins = _pins(operator)
    inputs, pinned = input_datasets(operator, pins)
    return _operator_lineage(
        inputs=inputs, outputs=output_datasets(operator), run_facets={**run_facets(operator, pins), **pinned}
    )


def on_failure(operator: LineageOperator) -> OperatorLineage[Any, Any]:
    _not_produced.update(_outlet_uris(operator))
    pins = _pins(operator)
    inputs, pinned = input_datasets(operator, pins)
    return _operator_lineage(inputs=inputs, run_facets={**run_facets(operator, pins), **pinned})


def datums_on_complete(operator: Any) -> OperatorLineage[Any, Any]:
    """A datum pipeline's ``commit`` task: the pinned inputs, the target at the one published commit, the counts."""
    from airflow_mlrepo.lineage.facets import DATUMS_FACET, MlrepoDatumsRunFacet

    pins = _pins(operator)
    counts = dict(getattr(operator, "counts", None) or {})
    inputs, facets = input_datasets(operator, pins)
    if counts:
        facets[DATUMS_FACET] = MlrepoDatumsRunFacet(
            mode=str(counts.get("mode", "")),
            processed=int(counts.get("processed", 0)),
            skipped=int(counts.get("skipped", 0)),
            deleted=int(counts.get("deleted", 0)),
            total=int(counts.get("total", 0)),
            tasks=int(counts.get("tasks", 0)),
            reason=counts.get("reason"),
        )
    return _operator_lineage(inputs=inputs, outputs=output_datasets(operator), run_facets=facets)


def revert_on_start(operator: Any) -> OperatorLineage[Any, Any]:
    """A revert's START (and FAIL): no datasets, its outlets not produced (see the module docstring)."""
    _not_produced.update(_outlet_uris(operator))
    return _operator_lineage()


def revert_on_complete(operator: Any) -> OperatorLineage[Any, Any]:
    """A revert's COMPLETE: each path at the restored commit as input, at the revert commit as output."""
    _not_produced.difference_update(_outlet_uris(operator))
    head = getattr(operator, "output_commit_id", None)
    if not head:
        return _operator_lineage()
    restored = getattr(operator, "restored_commit_id", None)
    hook = operator.__dict__.get("lakefs_hook")
    commit_time, produced_by = _commit_facts(hook, operator.repository, restored) if restored else (None, None)
    is_model = False
    if restored and hook is not None:
        try:
            is_model = hook.get_commit(operator.repository, restored).metadata.get("mlrepo.output_kind") == "model"
        except Exception:
            is_model = False
    inputs, outputs, chosen = [], [], []
    for path in operator.lineage_paths():
        location = LakeFSLocation(operator.repository, operator.branch, path)
        if restored:
            inputs.append(input_dataset(location, commit_id=restored, model=is_model))
            chosen.append(
                input_pin(
                    location, commit_id=restored, pin_rule="revert", commit_time=commit_time, produced_by=produced_by
                )
            )
        outputs.append(output_dataset(location, commit_id=str(head), model=is_model))
    return _operator_lineage(inputs=inputs, outputs=outputs, run_facets=pins_facet(chosen))


def sensor_on_complete(sensor: Any, head: str | None) -> OperatorLineage[Any, Any]:
    """A ``LakeFSCommitSensor``'s inputs: what it watched, at the branch head that carried the new commits."""
    paths = list(sensor.prefixes or sensor.objects or [""])
    inputs, chosen = [], []
    for path in paths:
        location = LakeFSLocation(sensor.repository, sensor.branch, str(path).lstrip("/"))
        inputs.append(input_dataset(location, commit_id=head))
        chosen.append(input_pin(location, commit_id=head, pin_rule="detected"))
    return _operator_lineage(inputs=inputs, run_facets=pins_facet(chosen))


__all__ = [
    "datums_on_complete",
    "execution_parameters",
    "input_datasets",
    "model_choice",
    "on_complete",
    "on_failure",
    "on_start",
    "outlet_not_produced",
    "revert_on_complete",
    "revert_on_start",
    "sensor_on_complete",
]
