"""``LakeFSPodOperator``: a KubernetesPodOperator that reads pinned lakeFS commits and commits its output atomically.

What one attempt does:

1. Parse and check every location, then pin every input to a commit id (:mod:`airflow_mlrepo.pinning`).
   Bad input (malformed location, output not on a branch, missing repository or ref) fails here,
   before any container starts and before anything is written.
2. If this run's task already produced exactly this output (same pins, code and output: the
   provenance fingerprint), return that commit: a retry after a crash between merge and task
   success does not commit twice.
3. Create a branch for this attempt from the target branch (stale branches of earlier attempts of
   the same task are removed first), clear the output prefix on it.
4. Run the container (Kubernetes pod, or a local process with ``[mlrepo] runner = local``) with
   the container contract's environment. It writes under ``MLREPO_OUTPUT``.
5. On success: commit the attempt branch with provenance metadata, merge it into the target
   branch (one merge commit, also carrying the metadata), delete the attempt branch. On any
   failure: delete the attempt branch. The target branch never shows partial output.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.sdk.exceptions import TaskDeferred
from kubernetes.client import models as k8s
from mlrepo_sdk import contract

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError, MlRepoError, PodPlanMissingError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from airflow_mlrepo.lineage.ids import task_lineage_ids
from airflow_mlrepo.links.lakefs import OUTPUT_COMMIT_XCOM_KEY, LakeFSOutputCommitLink, record_output_commit_url
from airflow_mlrepo.links.lakefs_ui import LakeFSUI
from airflow_mlrepo.links.marquez import LINEAGE_IDS_XCOM_KEY, MarquezRunLink
from airflow_mlrepo.local_runner import LocalProcess
from airflow_mlrepo.locations import BRANCH_RE, LakeFSLocation, is_commit_id
from airflow_mlrepo.operators import attempts, pod_lifecycle
from airflow_mlrepo.operators.attempts import ATTEMPT_BRANCH_PREFIX, TaskInstanceId
from airflow_mlrepo.operators.publishing import (
    PUBLISH_AUTO,
    attach_outlet_events,
    find_published,
    publish_branch,
    record_published,
)
from airflow_mlrepo.pinning import (
    DETECTION_XCOM_KEY,
    Detection,
    PinnedInput,
    check_against_first_attempt,
    pin_input,
)
from airflow_mlrepo.provenance import airflow_task_url, build_provenance, fingerprint
from airflow_mlrepo.triggers.pod import DEFERRAL_SETTLE_SECONDS, LakeFSPodTrigger

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import timedelta

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

RUNNER_LOCAL = "local"
RUNNER_KUBERNETES = "kubernetes"
RUNNERS = (RUNNER_LOCAL, RUNNER_KUBERNETES)
DEFAULT_SECRET_NAME = "mlrepo-lakefs"
#: Provenance key of the image digest the pod ran (its container status ``imageID``).
IMAGE_ID_METADATA = "mlrepo.image_id"
#: KubernetesPodOperator's ``startup_check_interval_seconds`` unless the DAG sets it: how often the pod
#: is read while it starts. KPO's 5 s made every pod wait up to 5 s after it was already running
#: (a pod starts in about 1 s on a warm node; docs/benchmarks.md, pods on the cluster).
STARTUP_CHECK_SECONDS = 1


def configured_runner() -> str:
    """``[mlrepo] runner`` (env ``AIRFLOW__MLREPO__RUNNER``), else ``MLREPO_RUNNER``, else ``kubernetes``."""
    from airflow.sdk.configuration import conf

    value = conf.get("mlrepo", "runner", fallback=None) or os.environ.get("MLREPO_RUNNER") or RUNNER_KUBERNETES
    return str(value).strip().lower()


@dataclass(frozen=True)
class AttemptPlan:
    """Everything one attempt decided before its container starts."""

    target: LakeFSLocation
    pins: dict[str, PinnedInput]
    attempt_branch: str
    stale_prefix: str
    fingerprint: str
    #: The branch the output was declared on (``target`` is where this run publishes: see publishing.py).
    declared_branch: str = ""

    @property
    def attempt_output(self) -> LakeFSLocation:
        return LakeFSLocation(self.target.repository, self.attempt_branch, self.target.path)


class LakeFSPodOperator(KubernetesPodOperator):
    """Run a container on pinned lakeFS inputs and commit what it writes, atomically, with provenance.

    :param inputs: ``{name: "lakefs://repo/ref/path"}``; branches are pinned to commit ids
        (see ``docs/concepts/pinning.md``), commit ids and tags are used as they are. Templated.
    :param output_location: ``lakefs://repo/branch/path``: the branch the output is merged into and the
        prefix the container writes under. The prefix is replaced by each run's output. Templated.
    :param hyperparameters: JSON-able parameters handed to the container (``MLREPO_PARAMS``) and
        recorded in the output commit. Templated.
    :param lakefs_conn_id: Airflow connection of type ``lakefs``.
    :param lakefs_secret_name: Kubernetes Secret (keys ``access_key_id``, ``secret_access_key``)
        from which pods get lakeFS credentials.
    :param lakefs_endpoint_in_pod: lakeFS URL as pods reach it, if it differs from the connection's;
        default: the lakeFS connection's extra ``lakefs_endpoint_in_pod``, else its host.
    :param runner: ``kubernetes`` or ``local``; default from ``[mlrepo] runner``.
    :param merge_strategy: ``None`` (default: fail on conflict), ``dest-wins`` or ``source-wins``.
    :param publish_to: ``auto`` (default: backfilled runs publish to a branch of their own, every
        other run to the output branch), ``target`` or ``run_branch``; see
        ``docs/concepts/publishing.md``. Templated.
    :param commit_message: message of the output commit. Templated.
    """

    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        "inputs",
        "output_location",
        "hyperparameters",
        "commit_message",
        "publish_to",
    )
    template_fields_renderers = {**KubernetesPodOperator.template_fields_renderers, "hyperparameters": "json"}
    operator_extra_links = (LakeFSOutputCommitLink(), MarquezRunLink())
    #: deferrable mode, triggerer on another host: the pod's trigger fires no sooner than this after the
    #: deferral (on the worker's host it waits for the worker to exit instead; apache/airflow#72716)
    deferral_settle_seconds: float = DEFERRAL_SETTLE_SECONDS
    output_kind = "output"
    #: Name of the input that is the model (inference), or None.
    model_input: str | None = None

    def __init__(
        self,
        *,
        output_location: str,
        inputs: Mapping[str, str] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        lakefs_secret_name: str = DEFAULT_SECRET_NAME,
        lakefs_endpoint_in_pod: str | None = None,
        runner: str | None = None,
        merge_strategy: str | None = None,
        commit_message: str | None = None,
        publish_to: str = PUBLISH_AUTO,
        **kwargs: Any,
    ) -> None:
        secrets = list(kwargs.pop("secrets", None) or [])
        secrets += [
            Secret("env", variable, lakefs_secret_name, key)  # type: ignore[no-untyped-call]
            for variable, key in contract.CREDENTIAL_VARIABLES.items()
        ]
        # One try, one pod, one attempt branch: a retry never reattaches to an earlier try's pod
        # (whose branch it deletes); see pod_lifecycle.remove_earlier_pods.
        kwargs.setdefault("durable", False)
        kwargs.setdefault("startup_check_interval_seconds", STARTUP_CHECK_SECONDS)
        super().__init__(secrets=secrets, **kwargs)
        self.inputs = dict(inputs or {})
        self.output_location = output_location
        self.hyperparameters = dict(hyperparameters or {})
        self.lakefs_conn_id = lakefs_conn_id
        self.lakefs_secret_name = lakefs_secret_name
        self.lakefs_endpoint_in_pod = lakefs_endpoint_in_pod
        self.runner = runner
        self.merge_strategy = merge_strategy
        self.commit_message = commit_message
        self.publish_to = publish_to
        self._contract_env: dict[str, str] | None = None
        self._local_process: LocalProcess | None = None
        self._plan_annotation: str | None = None
        #: The pod as last read before KubernetesPodOperator's cleanup (None: gone), and whether it was read.
        self._final_pod: k8s.V1Pod | None = None
        self._final_pod_read = False
        self._published: dict[str, Any] | None = None
        #: What the container left in ``/airflow/xcom/return.json`` (``do_xcom_push=True``), read by the sidecar.
        self.container_result: Any = None
        #: ``imageID`` of the container that ran (kubernetes runner), recorded in the provenance.
        self.pod_image_id: str | None = None
        #: What this attempt pinned and produced, for get_openlineage_facets_on_complete/failure.
        self.pinned_inputs: dict[str, PinnedInput] = {}
        self.output_commit_id: str | None = None
        #: What the extra links show for this attempt (None: no commit / no lineage ids yet; links/).
        self.output_commit_url: str | None = None
        self.openlineage_ids: dict[str, str] | None = None

    # ------------------------------------------------------------------ helpers

    @cached_property
    def lakefs_hook(self) -> LakeFSHook:
        return LakeFSHook(self.lakefs_conn_id)

    @property
    def effective_runner(self) -> str:
        runner = (self.runner or configured_runner()).strip().lower()
        if runner not in RUNNERS:
            raise MlRepoError(f"Task '{self.task_id}': unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
        return runner

    @property
    def command(self) -> list[str]:
        return [*(self.cmds or []), *(self.arguments or [])]

    def parse_locations(self) -> tuple[dict[str, LakeFSLocation], LakeFSLocation]:
        """Parse the (rendered) input and output locations; the output must name a branch."""
        declared: dict[str, LakeFSLocation] = {}
        for name, uri in self.inputs.items():
            try:
                declared[name] = LakeFSLocation.parse(uri)
            except InvalidLakeFSLocationError as exc:
                raise InvalidLakeFSLocationError(f"Task '{self.task_id}', input '{name}': {exc}") from exc
        try:
            target = LakeFSLocation.parse(self.output_location)
        except InvalidLakeFSLocationError as exc:
            raise InvalidLakeFSLocationError(f"Task '{self.task_id}', output: {exc}") from exc
        if is_commit_id(target.ref) or not BRANCH_RE.match(target.ref):
            raise InvalidLakeFSLocationError(
                f"Task '{self.task_id}': output {target.uri} must be on a branch, not on a commit, tag or ref "
                f"expression ({target.ref!r})"
            )
        return declared, target

    def pin_inputs(self, context: Context, declared: Mapping[str, LakeFSLocation]) -> dict[str, PinnedInput]:
        """Pin every declared input; subclasses add the model."""
        detections = self.upstream_detections(context)
        return {name: pin_input(self.lakefs_hook, name, loc, context, detections) for name, loc in declared.items()}

    def upstream_detections(self, context: Context) -> list[Detection]:
        """What the commit sensors upstream of this task detected in this run (their hand-over XCom)."""
        from airflow_mlrepo.sensors.lakefs import LakeFSCommitSensor

        if self.get_dag() is None:  # (the Task SDK's ``dag`` property raises without one)
            return []
        sensor_ids = sorted(
            task.task_id for task in self.get_flat_relatives(upstream=True) if isinstance(task, LakeFSCommitSensor)
        )
        if not sensor_ids:
            return []
        found: list[Detection] = []
        for task_id in sensor_ids:
            value = context["ti"].xcom_pull(task_ids=task_id, key=DETECTION_XCOM_KEY)
            detection = Detection.from_dict(value) if isinstance(value, dict) else None
            if detection is not None:
                found.append(detection)
        return found

    def model_policy(self) -> str | None:
        return None

    def plan(self, context: Context) -> AttemptPlan:
        """Check every location and pin every input: all before any container or write."""
        hook = self.lakefs_hook
        declared, target = self.parse_locations()
        if not hook.branch_exists(target.repository, target.ref):
            raise InvalidLakeFSLocationError(
                f"Task '{self.task_id}': output branch '{target.ref}' does not exist in repository "
                f"'{target.repository}' (or it is a tag): create the branch first"
            )
        pins = self.pin_inputs(context, declared)
        check_against_first_attempt(context, pins)
        ti = context["ti"]
        declared_branch = target.ref
        target = target.with_ref(
            publish_branch(
                self.publish_to,
                declared_branch,
                dag_id=ti.dag_id,
                run_id=context["run_id"],
                run_type=getattr(context.get("dag_run"), "run_type", None),
            )
        )
        map_index = _map_index(ti)
        stale_prefix = self.attempt_branch_prefix(context)
        return AttemptPlan(
            target=target,
            pins=pins,
            attempt_branch=f"{stale_prefix}try{ti.try_number}",
            stale_prefix=stale_prefix,
            fingerprint=fingerprint(
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                run_id=context["run_id"],
                map_index=map_index,
                pins=pins,
                output=target,
                image=self.image,
                command=self.command,
                hyperparameters=self.hyperparameters,
            ),
            declared_branch=declared_branch,
        )

    def attempt_branch_prefix(self, context: Context) -> str:
        """Prefix of every attempt branch of this task instance (``mlrepo-<task>-<dag>-<instance>-``: attempts.py)."""
        return self.task_instance_id(context).branch_prefix

    def task_instance_id(self, context: Context) -> TaskInstanceId:
        ti = context["ti"]
        return TaskInstanceId(ti.dag_id, context["run_id"], ti.task_id, _map_index(ti))

    # ---------------------------------------------------------------- execution

    def execute(self, context: Context) -> dict[str, Any]:
        plan = self.plan(context)
        self.remember_plan(context, plan)
        existing = self.find_existing_output(plan)
        if existing is not None:
            self.log.info("Output of this task with these exact inputs already exists: %s; not running again", existing)
            # An earlier try that merged and was killed before deleting its branch left it behind.
            self.remove_earlier_attempts(plan)
            return self.finish(context, plan, existing, reused=True)
        if self.effective_runner == RUNNER_KUBERNETES:
            self.prepare_kubernetes(context, plan)
        self.open_attempt(plan, context)
        try:
            self.run_container(context, plan)
        except TaskDeferred:
            raise
        except BaseException as exc:
            self.discard_attempt(plan)
            explained = self.explain_pod_failure(plan)
            if explained is not None:
                raise explained from exc
            raise
        if self._published is not None:
            # KubernetesPodOperator found the pod already finished and re-entered (and published) at once.
            return self._published
        return self.publish(context, plan)

    def defer(
        self,
        *,
        trigger: BaseTrigger,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | float | None = None,
    ) -> NoReturn:
        """Defer as ``KubernetesPodOperator`` does, on a pod trigger that never fires at once after the
        deferral (:mod:`airflow_mlrepo.triggers.pod`: Airflow 3.3.2 fails the task otherwise)."""
        if type(trigger) is KubernetesPodTrigger:
            trigger = LakeFSPodTrigger.settled(trigger, settle_seconds=self.deferral_settle_seconds)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        """Deferrable Kubernetes mode: the trigger fired; publish (or discard) the pod's output.

        The plan (pins, attempt branch, fingerprint) is the one the pod was started with, read
        from its ``mlrepo/plan`` annotation: nothing is pinned again. When the pod still runs,
        KubernetesPodOperator defers again (``TaskDeferred``): the attempt branch stays.
        """
        plan = self.plan_from_pod(context, event)
        self.remember_plan(context, plan)
        try:
            self.container_result = super().trigger_reentry(context, event)
        except TaskDeferred:
            raise
        except BaseException as exc:
            self.discard_attempt(plan)
            explained = self.explain_pod_failure(plan)
            if explained is not None:
                raise explained from exc
            raise
        self._published = self.publish(context, plan)
        return self._published

    def plan_from_pod(self, context: Context, event: Mapping[str, Any]) -> AttemptPlan:
        """The plan recorded on the pod the trigger watched (see :mod:`.pod_lifecycle`)."""
        namespace, name = str(event["namespace"]), str(event["name"])
        pod = pod_lifecycle.read_pod(self.client, namespace, name)
        if pod is None:
            prefix = self.attempt_branch_prefix(context)
            target = self.parse_locations()[1]
            for stale in self.lakefs_hook.list_branches(target.repository, prefix):
                self.lakefs_hook.delete_branch(target.repository, stale, missing_ok=True)
            raise PodPlanMissingError(
                f"Task '{self.task_id}': pod {namespace}/{name} is gone (deleted before the task resumed), and "
                f"with it the record of what it read; its output was discarded, {target} is untouched",
                namespace=namespace,
                pod=name,
            )
        recorded = (pod.metadata.annotations or {}).get(pod_lifecycle.PLAN_ANNOTATION)
        if not recorded:
            raise PodPlanMissingError(
                f"Task '{self.task_id}': pod {namespace}/{name} has no {pod_lifecycle.PLAN_ANNOTATION} annotation; "
                "it was not started by this operator",
                namespace=namespace,
                pod=name,
            )
        return AttemptPlan(**pod_lifecycle.decode_plan(recorded))

    def prepare_kubernetes(self, context: Context, plan: AttemptPlan) -> None:
        """Before any write: the namespace and Secret exist; earlier tries' pods are gone."""
        namespace = self.namespace or "default"
        pod_lifecycle.check_namespace_and_secret(
            self.client,
            task_id=self.task_id,
            namespace=namespace,
            secret_name=self.lakefs_secret_name,
            keys=contract.CREDENTIAL_VARIABLES.values(),
            target=plan.target,
        )
        removed = pod_lifecycle.remove_earlier_pods(
            self.client,
            namespace=namespace,
            labels=self._get_ti_pod_labels(context, include_try_number=False),
            try_number=context["ti"].try_number,
        )
        for name in removed:
            self.log.info(
                "Deleted pod %s/%s of an earlier try of this task before discarding its branch", namespace, name
            )

    def post_complete_action(
        self, *, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, context: Context, result: dict[Any, Any] | None, **kwargs: Any
    ) -> None:
        """Read the pod's final state (image digest, failure reason) before KubernetesPodOperator deletes it."""
        known = remote_pod or pod
        if known is not None and known.metadata is not None and known.metadata.name:
            try:
                self._final_pod = pod_lifecycle.read_pod(
                    self.client, known.metadata.namespace or self.namespace or "default", known.metadata.name
                )
                self._final_pod_read = True
            except Exception:
                self.log.warning("Could not read pod %s after it finished", known.metadata.name, exc_info=True)
            self.pod_image_id = pod_lifecycle.image_id(self._final_pod or known, self.base_container_name)
        super().post_complete_action(pod=pod, remote_pod=remote_pod, context=context, result=result, **kwargs)

    def explain_pod_failure(self, plan: AttemptPlan) -> MlRepoError | None:
        """A clear error naming pod, image, Secret or deadline for the pod that just failed, if known."""
        if self.effective_runner != RUNNER_KUBERNETES or self._killed:
            return None
        request = self.pod or self.pod_request_obj
        if request is None or request.metadata is None or not request.metadata.name:
            return None
        return pod_lifecycle.explain_failure(
            self._final_pod,
            task_id=self.task_id,
            namespace=request.metadata.namespace or self.namespace or "default",
            name=request.metadata.name,
            container=self.base_container_name,
            image=self.image,
            target=plan.target,
            deleted=self._final_pod_read and self._final_pod is None,
        )

    def remember_plan(self, context: Context, plan: AttemptPlan) -> None:
        """Keep the pins for lineage (also of a failed attempt) and push the ids the Marquez link needs."""
        self.pinned_inputs = dict(plan.pins)
        ids = task_lineage_ids(context["ti"])
        if ids is not None:
            self.openlineage_ids = {"namespace": ids.namespace, "job_name": ids.job_name, "run_id": ids.run_id}
            context["ti"].xcom_push(key=LINEAGE_IDS_XCOM_KEY, value=self.openlineage_ids)

    # ------------------------------------------------------------------ lineage

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any]:
        from airflow_mlrepo.lineage import operator_lineage

        return operator_lineage.on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        from airflow_mlrepo.lineage import operator_lineage

        return operator_lineage.on_complete(self)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        from airflow_mlrepo.lineage import operator_lineage

        return operator_lineage.on_failure(self)

    def find_existing_output(self, plan: AttemptPlan) -> str | None:
        """The commit an earlier attempt of this exact work published (a tag lookup), or None."""
        hook = self.lakefs_hook
        own_branch = bool(plan.declared_branch) and plan.target.ref != plan.declared_branch
        if own_branch and not hook.branch_exists(plan.target.repository, plan.target.ref):
            return None
        attempts = hook.list_branches(plan.target.repository, plan.stale_prefix)
        return find_published(hook, plan.target, plan.fingerprint, attempt_branches=attempts, log=self.log)

    def open_attempt(self, plan: AttemptPlan, context: Context) -> None:
        hook = self.lakefs_hook
        repository = plan.target.repository
        if plan.declared_branch and plan.target.ref != plan.declared_branch:
            # The run's own branch is made from the declared branch once. A later run of the same DAG
            # run (cleared, or backfilled again) publishes on top of what it published before: the
            # declared branch has usually moved since, and the branch is this run's, not a conflict.
            again = hook.branch_exists(repository, plan.target.ref)
            if not again:
                hook.create_branch(repository, plan.target.ref, plan.declared_branch)
            self.log.info(
                "This %s run publishes to branch %s (%s), not to %s itself: see publish_to",
                "backfilled" if plan.target.ref.startswith("backfill-") else "",
                plan.target.ref,
                "made by an earlier run of it" if again else f"from {plan.declared_branch}",
                plan.declared_branch,
            )
        self.remove_earlier_attempts(plan)
        self.remove_leftover_attempts(context, repository, own_prefix=plan.stale_prefix)
        source = self.attempt_source(plan)
        hook.create_branch(repository, plan.attempt_branch, source)
        removed = self.clear_attempt_output(plan)
        self.log.info(
            "Attempt branch %s created from %s (%d old objects under '%s' cleared); output goes to %s",
            plan.attempt_branch,
            source,
            removed,
            plan.target.path,
            plan.attempt_output,
        )

    def remove_earlier_attempts(self, plan: AttemptPlan) -> None:
        """Delete the branches earlier tries of this task instance left (``plan.stale_prefix``)."""
        hook = self.lakefs_hook
        for stale in hook.list_branches(plan.target.repository, plan.stale_prefix):
            self.log.info("Removing branch %s left by an earlier attempt", stale)
            hook.delete_branch(plan.target.repository, stale, missing_ok=True)

    def remove_leftover_attempts(self, context: Context, repository: str, *, own_prefix: str) -> list[str]:
        """Delete the attempt branches other task instances of this DAG left in ``repository``.

        A branch is a leftover when its task instance is finished or gone (:mod:`.attempts`); the
        states come from Airflow through the Task SDK, and only when a branch of this DAG other than
        this instance's own exists (usually none: one lakeFS list call, no Airflow call). Best effort:
        a failure here is logged and never fails the task.
        """
        ti = context["ti"]
        try:
            mine = attempts.dag_key(ti.dag_id)
            names = [
                name
                for name in self.lakefs_hook.list_branches(repository, ATTEMPT_BRANCH_PREFIX)
                if not name.startswith(own_prefix)
            ]
            parsed = [
                branch for branch in map(attempts.AttemptBranch.parse, names) if branch and branch.dag_key == mine
            ]
            if not parsed:
                return []
            slugs = {branch.task for branch in parsed}
            dag = context.get("dag")
            task_ids = [
                t for t in (dag.task_ids if dag is not None else [ti.task_id]) if attempts.branch_safe(t) in slugs
            ]
            states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids) if task_ids else {}
            known = attempts.instances_from_task_states(ti.dag_id, states, task_ids)
            verdicts = attempts.judge([b.name for b in parsed], [ti.dag_id], known, every_dag_known=False)
            return attempts.delete_leftovers(self.lakefs_hook, repository, verdicts, self.log)
        except Exception:
            self.log.warning(
                "Could not remove leftover attempt branches in %s; `mlrepo cleanup attempts` can",
                repository,
                exc_info=True,
            )
            return []

    def attempt_source(self, plan: AttemptPlan) -> str:
        """The ref an attempt branch starts from: the target branch."""
        return plan.target.ref

    def clear_attempt_output(self, plan: AttemptPlan) -> int:
        """Clear what the container replaces on the attempt branch (the whole output prefix); return how many."""
        return self.lakefs_hook.delete_prefix(plan.target.repository, plan.attempt_branch, plan.target.path)

    def discard_attempt(self, plan: AttemptPlan, *, merged: bool = False) -> None:
        """Delete the attempt branch: after a failure (the target stays untouched) or after the merge."""
        try:
            self.lakefs_hook.delete_branch(plan.target.repository, plan.attempt_branch, missing_ok=True)
        except Exception:
            self.log.exception("Could not delete attempt branch %s; the next attempt removes it", plan.attempt_branch)
            return
        if not merged:
            self.log.info("Attempt failed: branch %s deleted, %s untouched", plan.attempt_branch, plan.target)

    def contract_environment(self, context: Context, plan: AttemptPlan) -> dict[str, str]:
        ti = context["ti"]
        endpoint = self.lakefs_endpoint_in_pod or self.lakefs_hook.settings.endpoint
        if self.lakefs_endpoint_in_pod is None and self.effective_runner == RUNNER_KUBERNETES:
            endpoint = pod_lifecycle.endpoint_in_pod(self.lakefs_conn_id) or endpoint
        return contract.container_environment(
            pins=plan.pins,
            output=plan.attempt_output,
            endpoint=endpoint,
            hyperparameters=self.hyperparameters,
            run={
                "dag_id": ti.dag_id,
                "run_id": context["run_id"],
                "task_id": ti.task_id,
                "try_number": ti.try_number,
                "map_index": _map_index(ti),
            },
            model_input=self.model_input,
        )

    def run_container(self, context: Context, plan: AttemptPlan) -> None:
        env = self.contract_environment(context, plan)
        if self.effective_runner == RUNNER_LOCAL:
            self.run_locally(env)
            return
        self.prepare_pod_environment(env)
        self._plan_annotation = pod_lifecycle.encode_plan(
            target=plan.target,
            pins=plan.pins,
            attempt_branch=plan.attempt_branch,
            stale_prefix=plan.stale_prefix,
            fingerprint=plan.fingerprint,
            declared_branch=plan.declared_branch,
        )
        self.container_result = super().execute(context)

    def prepare_pod_environment(self, env: Mapping[str, str]) -> None:
        """Set the contract's (non-secret) variables that :meth:`build_pod_request_obj` adds to the pod."""
        self._contract_env = dict(env)

    def run_locally(self, env: Mapping[str, str]) -> None:
        settings = self.lakefs_hook.settings
        process_env = {var.name: var.value or "" for var in (self.env_vars or []) if isinstance(var, k8s.V1EnvVar)}
        process_env.update(env)
        process_env.update(contract.credential_environment(settings.access_key_id, settings.secret_access_key))
        self.log.info("Running locally (runner=local): %s", self.command)
        with tempfile.TemporaryDirectory(prefix="mlrepo-task-") as workdir:
            self._local_process = LocalProcess(
                command=self.command,
                env=process_env,
                log_line=lambda line: self.log.info("[container] %s", line),
                cwd=workdir,
                timeout=float(self.active_deadline_seconds) if self.active_deadline_seconds else None,
            )
            try:
                self._local_process.run()
            finally:
                self._local_process = None

    def on_kill(self) -> None:
        if self._local_process is not None:
            self._local_process.kill()
            return
        super().on_kill()

    def build_pod_request_obj(self, context: Context | None = None, *, dry_run: bool = False) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        if self._contract_env:
            container = pod.spec.containers[0]
            existing = {env.name for env in container.env or []}
            container.env = [
                *(container.env or []),
                *(k8s.V1EnvVar(name=k, value=v) for k, v in sorted(self._contract_env.items()) if k not in existing),
            ]
            pod.metadata.labels = {**(pod.metadata.labels or {}), "mlrepo/output-kind": self.output_kind}
            pod.metadata.annotations = {
                **(pod.metadata.annotations or {}),
                "mlrepo/output": self._contract_env[contract.OUTPUT],
                "mlrepo/inputs": self._contract_env[contract.INPUTS],
            }
            if self._plan_annotation:
                pod.metadata.annotations[pod_lifecycle.PLAN_ANNOTATION] = self._plan_annotation
        return pod

    # ------------------------------------------------------------------ publish

    def publish(self, context: Context, plan: AttemptPlan) -> dict[str, Any]:
        """Commit the attempt branch with provenance, merge it into the target, delete it."""
        hook = self.lakefs_hook
        repository = plan.target.repository
        metadata = self.provenance(context, plan)
        message = self.commit_message or f"{self.output_kind} from {context['ti'].dag_id}.{context['ti'].task_id}"
        try:
            if not any(True for _ in hook.list_objects(repository, plan.attempt_branch, plan.target.path)):
                raise MlRepoError(
                    f"Task '{self.task_id}': the container wrote nothing under {plan.attempt_output}; "
                    f"{plan.target} is unchanged"
                )
            # allow_empty: a recompute may produce exactly the bytes the target already holds; the
            # commit still records that this run, with these pins, produced them.
            hook.commit(repository, plan.attempt_branch, message, metadata, allow_empty=True)
        except BaseException:
            self.discard_attempt(plan)
            raise
        try:
            merge_id = hook.merge(
                repository,
                plan.attempt_branch,
                plan.target.ref,
                message=message,
                metadata=metadata,
                strategy=self.merge_strategy,
                allow_empty=True,
            )
            record_published(hook, plan.target, plan.fingerprint, merge_id, log=self.log)
        finally:
            self.discard_attempt(plan, merged=True)
        self.log.info("Output committed atomically: %s", plan.target.with_ref(merge_id))
        return self.finish(context, plan, merge_id, reused=False)

    def finish(self, context: Context, plan: AttemptPlan, commit_id: str, *, reused: bool) -> dict[str, Any]:
        settings = self.lakefs_hook.settings
        url = LakeFSUI(settings.browser_url).commit(plan.target.repository, commit_id)
        record_output_commit_url(self, context["ti"], url)
        context["ti"].xcom_push(key=OUTPUT_COMMIT_XCOM_KEY, value=plan.target.with_ref(commit_id).uri)
        attach_outlet_events(context, self.outlets, plan.target, commit_id, task=f"{self.dag_id}.{self.task_id}")
        self.output_commit_id = commit_id
        self.pinned_inputs = plan.pins
        result = {
            "commit_id": commit_id,
            "output": plan.target.with_ref(commit_id).uri,
            "repository": plan.target.repository,
            "branch": plan.target.ref,
            "path": plan.target.path,
            "inputs": {name: pin.to_dict() for name, pin in sorted(plan.pins.items())},
            "reused": reused,
        }
        if self.container_result is not None:
            result["container_result"] = self.container_result
        return result

    def provenance(self, context: Context, plan: AttemptPlan) -> dict[str, str]:
        from airflow.sdk.configuration import conf

        ti = context["ti"]
        dag_run = context.get("dag_run")
        map_index = _map_index(ti)
        base_url = conf.get("api", "base_url", fallback="http://localhost:8080")
        metadata = build_provenance(
            output_kind=self.output_kind,
            pins=plan.pins,
            model_input=self.model_input,
            model_policy=self.model_policy(),
            dag_id=ti.dag_id,
            run_id=context["run_id"],
            task_id=ti.task_id,
            map_index=map_index,
            try_number=ti.try_number,
            run_type=getattr(dag_run, "run_type", None),
            logical_date=context.get("logical_date"),
            data_interval_start=context.get("data_interval_start"),
            data_interval_end=context.get("data_interval_end"),
            image=self.image,
            command=self.command,
            runner=self.effective_runner,
            hyperparameters=self.hyperparameters,
            fingerprint_value=plan.fingerprint,
            airflow_url=airflow_task_url(base_url, ti.dag_id, context["run_id"], ti.task_id, map_index),
            openlineage_run_id=_openlineage_run_id(ti),
            output=plan.target.uri,
        )
        if self.pod_image_id:
            metadata[IMAGE_ID_METADATA] = self.pod_image_id
        ids = task_lineage_ids(ti)
        if ids is not None:
            # the run that wrote this commit, so readers can link to it in Marquez (lineage/marquez.py)
            metadata.update(ids.commit_metadata())
        return metadata


def _map_index(ti: Any) -> int:
    value = getattr(ti, "map_index", None)
    return -1 if value is None else int(value)


def _openlineage_run_id(ti: Any) -> str | None:
    """The OpenLineage run id the openlineage provider gives this task attempt, if it is installed."""
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_run_id

        return str(lineage_run_id(ti))
    except Exception:
        return None
