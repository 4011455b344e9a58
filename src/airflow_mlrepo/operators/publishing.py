"""Publishing outputs: where a run's output goes, and how a retry finds what an earlier attempt published.

**Where** (``docs/concepts/publishing.md``). ``publish_to`` of the pod operators:

* ``auto`` (default): scheduled, manual and asset-triggered runs publish to the declared output
  branch (the production branch); a **backfilled** run publishes to a branch of its own,
  ``backfill-<dag_id>-<run_id>``, created from the declared branch, so a backfill never replaces
  what production runs published;
* ``target``: always the declared branch (a backfill that is meant to repair production);
* ``run_branch``: always the run's own branch (``run-<dag_id>-<run_id>`` outside backfills).

**Exactly once.** Every published commit carries its fingerprint (``mlrepo.fingerprint``: the
run, task, pinned inputs, code and output). After merging, the operator tags the merge commit
``mlrepo-fp-<fingerprint>``; a later attempt of the same work resolves that tag (one lakeFS call,
whatever the length of the branch's history) and returns the commit instead of running again. If
the process died between the merge and the tag, the attempt branch is still there: its head
carries the fingerprint, and when it is in the target's history the merge commit above it is found
and tagged then.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import LakeFSConflictError, LakeFSNotFoundError, MlRepoError
from airflow_mlrepo.provenance import FINGERPRINT, plain_value

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Protocol

    class Logger(Protocol):
        def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...

    from airflow_mlrepo.hooks.lakefs import LakeFSHook
    from airflow_mlrepo.locations import LakeFSLocation

FINGERPRINT_TAG_PREFIX = "mlrepo-fp-"
PUBLISH_AUTO = "auto"
PUBLISH_TARGET = "target"
PUBLISH_RUN_BRANCH = "run_branch"
PUBLISH_POLICIES = (PUBLISH_AUTO, PUBLISH_TARGET, PUBLISH_RUN_BRANCH)
#: Run types that ``auto`` keeps out of the production branch.
OWN_BRANCH_RUN_TYPES = ("backfill",)
#: lakeFS branch ids are at most this long.
_BRANCH_MAX = 200


def fingerprint_tag(fingerprint: str) -> str:
    """The tag that marks the commit a piece of work published."""
    return f"{FINGERPRINT_TAG_PREFIX}{fingerprint}"


def run_branch(dag_id: str, run_id: str, run_type: Any) -> str:
    """The branch of a run's own outputs: ``backfill-<dag>-<run>`` for backfills, else ``run-<dag>-<run>``."""
    kind = "backfill" if plain_value(run_type) == "backfill" else "run"
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", f"{dag_id}-{run_id}")
    return f"{kind}-{slug}"[:_BRANCH_MAX]


def publish_branch(policy: str | None, declared_branch: str, *, dag_id: str, run_id: str, run_type: Any) -> str:
    """The branch a run publishes to under ``policy`` (see the module docstring)."""
    chosen = (policy or PUBLISH_AUTO).strip().lower()
    if chosen not in PUBLISH_POLICIES:
        raise MlRepoError(
            f"Unknown publish_to {policy!r} for output branch '{declared_branch}': "
            f"use one of {', '.join(PUBLISH_POLICIES)}"
        )
    if chosen == PUBLISH_TARGET:
        return declared_branch
    if chosen == PUBLISH_RUN_BRANCH or plain_value(run_type) in OWN_BRANCH_RUN_TYPES:
        return run_branch(dag_id, run_id, run_type)
    return declared_branch


def find_published(
    hook: LakeFSHook,
    target: LakeFSLocation,
    fingerprint: str,
    *,
    attempt_branches: list[str],
    log: Logger,
) -> str | None:
    """The commit an earlier attempt of this work published on ``target``'s branch, or None."""
    repository = target.repository
    try:
        tagged = hook.get_commit(repository, fingerprint_tag(fingerprint))
    except LakeFSNotFoundError as exc:
        if "repository not found" in (exc.server_message or "").lower():
            raise
        tagged = None
    if tagged is not None:
        if hook.is_ancestor(repository, tagged.id, target.ref):
            return tagged.id
        log.warning(
            "Commit %s published this work earlier but is no longer in the history of branch '%s' (reset?); "
            "running again",
            tagged.id,
            target.ref,
        )
        return None
    # The crash window between merge and tag: an attempt branch whose head is the merged output commit.
    for branch in attempt_branches:
        head = hook.get_commit(repository, branch)
        if head.metadata.get(FINGERPRINT) != fingerprint or not hook.is_ancestor(repository, head.id, target.ref):
            continue
        for commit in hook.log_commits(repository, target.ref, first_parent=True):
            if head.id in commit.parents[1:]:
                record_published(hook, target, fingerprint, commit.id, log=log)
                return commit.id
    return None


def record_published(
    hook: LakeFSHook, target: LakeFSLocation, fingerprint: str, commit_id: str, *, log: Logger
) -> None:
    """Tag ``commit_id`` as the commit this work published (idempotent)."""
    try:
        hook.create_tag(target.repository, fingerprint_tag(fingerprint), commit_id)
    except LakeFSConflictError as exc:
        # The tag points at an output that a reset removed from the branch; keep it, say so.
        log.warning("Cannot tag %s as the output of this work: %s", commit_id, exc)


def attach_outlet_events(
    context: Mapping[str, Any], outlets: Any, target: LakeFSLocation, commit_id: str, *, task: str
) -> None:
    """Put :func:`outlet_facts` on the outlet asset events of every outlet ``lakefs://`` asset of ``target``.

    An outlet matches when its repository and path are the output's (its branch may be the declared
    branch while a backfill publishes elsewhere: the event then names the branch it really went to).
    """
    from airflow.sdk import Asset

    from airflow_mlrepo.exceptions import InvalidLakeFSLocationError
    from airflow_mlrepo.locations import LakeFSLocation

    events = context.get("outlet_events")
    if events is None:
        return
    for outlet in outlets or ():
        if not isinstance(outlet, Asset) or not str(outlet.uri).startswith("lakefs://"):
            continue
        try:
            location = LakeFSLocation.parse(outlet.uri)
        except InvalidLakeFSLocationError:
            continue
        if location.repository == target.repository and location.path.rstrip("/") == target.path.rstrip("/"):
            events[outlet].extra.update(outlet_facts(target, commit_id, task=task))


def outlet_facts(target: LakeFSLocation, commit_id: str, *, task: str) -> Mapping[str, Any]:
    """What an output's asset event says: ``{"lakefs": {repository, branch, commit_id, path, ...}}``."""
    from airflow_mlrepo.pinning import ASSET_EVENT_KEY

    return {
        ASSET_EVENT_KEY: {
            "repository": target.repository,
            "branch": target.ref,
            "commit_id": commit_id,
            "commits": [commit_id],
            "path": target.path,
            "source": "operator",
            "task": task,
        }
    }


__all__ = [
    "FINGERPRINT_TAG_PREFIX",
    "PUBLISH_POLICIES",
    "attach_outlet_events",
    "find_published",
    "fingerprint_tag",
    "outlet_facts",
    "publish_branch",
    "record_published",
    "run_branch",
]
