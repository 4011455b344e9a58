"""``LakeFSInferenceOperator``: predict with a chosen model version on pinned input data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.operators.pod import LakeFSPodOperator
from airflow_mlrepo.pinning import PinnedInput, pin_from_asset_events, pin_latest, run_instant

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

MODEL_INPUT = "model"
MODEL_LATEST = "latest"
MODEL_AS_OF = "as_of"


class LakeFSInferenceOperator(LakeFSPodOperator):
    """Run inference in a container with a model chosen by ``model_version``.

    :param model: ``lakefs://models-repo/branch/path``: where models are committed (the branch
        the ``latest`` and ``as_of`` policies follow). Templated.
    :param model_version: ``latest`` (default: the model commit of the run's triggering asset event
        when a new model started the run, else the branch head when the attempt runs, so clearing an
        old run recomputes it with today's model), ``as_of`` (the branch head as of the run's data
        interval end: reproduce what ran then), or an explicit commit id, tag or ref. Templated, so
        ``"{{ params.model_version }}"`` makes it a run parameter. The choice is recorded.
    """

    template_fields: Sequence[str] = (*LakeFSPodOperator.template_fields, "model", "model_version")
    output_kind = "predictions"
    model_input = MODEL_INPUT

    def __init__(self, *, model: str, model_version: str = MODEL_LATEST, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.model_version = model_version

    def model_policy(self) -> str:
        return model_policy(self.model_version)

    def pin_inputs(self, context: Context, declared: Mapping[str, LakeFSLocation]) -> dict[str, PinnedInput]:
        if MODEL_INPUT in declared:
            raise InvalidLakeFSLocationError(
                f"Task '{self.task_id}': the input name '{MODEL_INPUT}' is reserved for the model; rename the input"
            )
        pins = super().pin_inputs(context, declared)
        try:
            model = LakeFSLocation.parse(self.model)
        except InvalidLakeFSLocationError as exc:
            raise InvalidLakeFSLocationError(f"Task '{self.task_id}', model: {exc}") from exc
        pins[MODEL_INPUT] = pin_model(self.lakefs_hook, model, self.model_version, context)
        return pins


def pin_model(hook: LakeFSHook, model: LakeFSLocation, model_version: str | None, context: Context) -> PinnedInput:
    """Bind the model by its ``model_version`` policy: ``latest``, ``as_of`` or an explicit commit id or tag."""
    version = (model_version or MODEL_LATEST).strip()
    if version == MODEL_LATEST:
        # A run started by a new model uses that model, even when a newer one landed since.
        return pin_from_asset_events(hook, MODEL_INPUT, model, context) or pin_latest(hook, MODEL_INPUT, model)
    if version == MODEL_AS_OF:
        when = run_instant(context)
        commit = hook.branch_head_as_of(model.repository, model.ref, when)
        return PinnedInput(MODEL_INPUT, model, commit.id, MODEL_AS_OF, as_of=when.isoformat())
    commit_id = hook.resolve_commit_id(model.repository, version)
    return PinnedInput(MODEL_INPUT, model.with_ref(version), commit_id, "explicit")


def model_policy(model_version: str | None) -> str:
    """How provenance records the choice: ``latest``, ``as_of`` or ``explicit:<ref>``."""
    version = (model_version or MODEL_LATEST).strip()
    return version if version in (MODEL_LATEST, MODEL_AS_OF) else f"explicit:{version}"
