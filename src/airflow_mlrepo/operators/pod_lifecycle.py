"""What ``LakeFSPodOperator`` does around a Kubernetes pod, beyond KubernetesPodOperator itself.

* **The plan on the pod.** The attempt's pins, attempt branch and fingerprint are written to the
  pod's ``mlrepo/plan`` annotation. A deferred task that resumes reads them back from the pod
  (:func:`decode_plan`) instead of pinning again: with ``model_version="latest"`` a new model
  registered while the pod ran must not appear in the provenance of output the pod made with the
  old one.
* **Before a pod starts** (:func:`check_namespace_and_secret`): the namespace exists and the lakeFS
  Secret has the keys the pod refers to, so that a typo fails at once with the names, instead of a
  pod waiting in ``CreateContainerConfigError`` until the startup timeout.
* **One try, one pod, one branch** (:func:`remove_earlier_pods`): a retry starts a fresh pod, never
  reattaching to the pod of a try whose worker died. The earlier try's pods are deleted (and gone)
  *before* that try's attempt branch is deleted, so no pod is left writing to a deleted branch.
* **Clear errors** (:func:`explain_failure`): a failed pod is described by what Kubernetes says
  about it, naming the pod, the image, the Secret or the deadline.
* **The image that ran** (:func:`image_id`): the digest from the pod's container status, recorded
  in the output commit's provenance next to the tag the task asked for.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from airflow_mlrepo.exceptions import PodRunError
from airflow_mlrepo.locations import LakeFSLocation
from airflow_mlrepo.pinning import PinnedInput

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kubernetes.client import CoreV1Api
    from kubernetes.client import models as k8s

PLAN_ANNOTATION = "mlrepo/plan"
PLAN_FORMAT = 1
#: Waiting reasons after which a container never starts without someone changing something.
FATAL_WAITING_REASONS = frozenset(
    {"ErrImageNeverPull", "InvalidImageName", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"}
)
EARLIER_POD_TIMEOUT = 120.0


def encode_plan(
    *,
    target: LakeFSLocation,
    pins: Mapping[str, PinnedInput],
    attempt_branch: str,
    stale_prefix: str,
    fingerprint: str,
    declared_branch: str = "",
) -> str:
    """The ``mlrepo/plan`` annotation: everything the attempt decided before its pod started."""
    return json.dumps(
        {
            "format": PLAN_FORMAT,
            "target": target.uri,
            "attempt_branch": attempt_branch,
            "stale_prefix": stale_prefix,
            "fingerprint": fingerprint,
            "declared_branch": declared_branch,
            "pins": {
                name: {"source": pin.source.uri, "commit_id": pin.commit_id, "rule": pin.rule, "as_of": pin.as_of}
                for name, pin in sorted(pins.items())
            },
        },
        sort_keys=True,
    )


def decode_plan(text: str) -> dict[str, Any]:
    """The keyword arguments of ``AttemptPlan`` from an ``mlrepo/plan`` annotation."""
    raw = json.loads(text)
    if raw.get("format") != PLAN_FORMAT:
        raise ValueError(f"unknown {PLAN_ANNOTATION} format {raw.get('format')!r}")
    return {
        "target": LakeFSLocation.parse(raw["target"]),
        "attempt_branch": raw["attempt_branch"],
        "stale_prefix": raw["stale_prefix"],
        "fingerprint": raw["fingerprint"],
        "declared_branch": raw.get("declared_branch", ""),
        "pins": {
            name: PinnedInput(
                name=name,
                source=LakeFSLocation.parse(pin["source"]),
                commit_id=pin["commit_id"],
                rule=pin["rule"],
                as_of=pin.get("as_of"),
            )
            for name, pin in raw["pins"].items()
        },
    }


def endpoint_in_pod(lakefs_conn_id: str) -> str | None:
    """The lakeFS connection's extra ``lakefs_endpoint_in_pod`` (where pods reach lakeFS), if set."""
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(lakefs_conn_id).extra_dejson or {}
    value = extra.get("lakefs_endpoint_in_pod") or extra.get("extra__lakefs__lakefs_endpoint_in_pod")
    return str(value).rstrip("/") if value else None


def read_pod(core: CoreV1Api, namespace: str, name: str) -> k8s.V1Pod | None:
    """The pod, or None when it does not exist (any other API error is raised)."""
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def check_namespace_and_secret(
    core: CoreV1Api, *, task_id: str, namespace: str, secret_name: str, keys: Iterable[str], target: LakeFSLocation
) -> None:
    """Fail with the names when the namespace or the lakeFS Secret (or one of its keys) is missing.

    A 403 (the connection may not read namespaces or Secrets) skips the check: the pod then shows it.
    """
    untouched = f"{target} is untouched"
    try:
        core.read_namespace(namespace)
    except ApiException as err:
        if err.status == 404:
            raise PodRunError(
                f"Task '{task_id}': Kubernetes namespace '{namespace}' does not exist; no pod was started, {untouched}",
                namespace=namespace,
            ) from None
        if err.status != 403:
            raise
    try:
        secret = core.read_namespaced_secret(secret_name, namespace)
    except ApiException as err:
        if err.status == 404:
            raise PodRunError(
                f"Task '{task_id}': Secret '{secret_name}' (lakeFS credentials, keys "
                f"{', '.join(sorted(keys))}) does not exist in namespace '{namespace}'; no pod was started, "
                f"{untouched}",
                namespace=namespace,
            ) from None
        if err.status != 403:
            raise
        return
    present = set((secret.data or {}).keys()) | set((secret.string_data or {}).keys())
    missing = sorted(set(keys) - present)
    if missing:
        raise PodRunError(
            f"Task '{task_id}': Secret '{namespace}/{secret_name}' has no key {', '.join(repr(k) for k in missing)} "
            f"(it has {', '.join(sorted(present)) or 'no keys'}); no pod was started, {untouched}",
            namespace=namespace,
        )


def remove_earlier_pods(
    core: CoreV1Api, *, namespace: str, labels: Mapping[str, str], try_number: int, timeout: float = EARLIER_POD_TIMEOUT
) -> list[str]:
    """Delete this task instance's pods of earlier tries and wait until they are gone; their names."""
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()) if key != "try_number")
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    earlier = [pod.metadata.name for pod in pods if (pod.metadata.labels or {}).get("try_number") != str(try_number)]
    for name in earlier:
        try:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as err:
            if err.status != 404:
                raise
    deadline = time.monotonic() + timeout
    for name in earlier:
        while read_pod(core, namespace, name) is not None:
            if time.monotonic() > deadline:
                raise PodRunError(
                    f"pod {namespace}/{name} of an earlier try did not go away within {timeout:.0f}s; "
                    "not starting a new pod while it may still write",
                    namespace=namespace,
                    pod=name,
                )
            time.sleep(0.5)
    return earlier


def _container_status(pod: k8s.V1Pod, container: str) -> Any:
    for status in (pod.status.container_statuses if pod.status else None) or []:
        if status.name == container:
            return status
    return None


def image_id(pod: k8s.V1Pod | None, container: str) -> str | None:
    """``imageID`` of ``container`` in the pod's status (``sha256:...`` or ``repo@sha256:...``)."""
    if pod is None:
        return None
    status = _container_status(pod, container)
    value = getattr(status, "image_id", None) if status is not None else None
    return str(value) if value else None


def explain_failure(
    pod: k8s.V1Pod | None,
    *,
    task_id: str,
    namespace: str,
    name: str,
    container: str,
    image: str | None,
    target: LakeFSLocation,
    deleted: bool,
) -> PodRunError | None:
    """A clear error for a pod that did not succeed, from its last known state; None if nothing is known."""
    untouched = f"{target} is untouched"
    where = f"Task '{task_id}': pod {namespace}/{name}"
    if deleted:
        return PodRunError(
            f"{where} was deleted before it finished; its output was discarded, {untouched}",
            namespace=namespace,
            pod=name,
        )
    if pod is None or pod.status is None:
        return None
    if pod.status.reason == "DeadlineExceeded":
        deadline = pod.spec.active_deadline_seconds if pod.spec else None
        return PodRunError(
            f"{where} ran longer than active_deadline_seconds={deadline} and was stopped by Kubernetes "
            f"(DeadlineExceeded); its output was discarded, {untouched}",
            namespace=namespace,
            pod=name,
        )
    status = _container_status(pod, container)
    waiting = status.state.waiting if status is not None and status.state is not None else None
    if waiting is not None and waiting.reason in FATAL_WAITING_REASONS:
        if waiting.reason == "CreateContainerConfigError":
            return PodRunError(
                f"{where} could not start container '{container}': {waiting.message} "
                f"(CreateContainerConfigError); {untouched}",
                namespace=namespace,
                pod=name,
            )
        return PodRunError(
            f"{where}: image '{image}' cannot be used ({waiting.reason}: {waiting.message}); on a cluster without "
            f"a registry, import the image into the node's containerd first; {untouched}",
            namespace=namespace,
            pod=name,
        )
    terminated = status.state.terminated if status is not None and status.state is not None else None
    if terminated is not None and terminated.exit_code not in (0, None):
        return PodRunError(
            f"{where}: container '{container}' (image '{image}') exited with code {terminated.exit_code} "
            f"({terminated.reason}); its output was discarded, {untouched}",
            namespace=namespace,
            pod=name,
        )
    return None
