"""``LakeFSRevertOperator``: undo one commit on a lakeFS branch with a new commit, recording who and why.

lakeFS's revert adds a commit that applies the inverse of the reverted commit's changes; history
is kept (nothing is force-moved), so runs pinned to older commits still read what they read, and
commit-watching DAGs see the revert commit like any other new commit. Reverting the models branch's
head puts the previous model back; reverting a bad training-data commit and letting the training
DAG's watcher see the revert retrains without that data.

Lineage: the revert commit records this task's OpenLineage run (like every output commit of the
training and inference operators), and on COMPLETE the task reports, for each of its ``paths``, the
commit whose content it restored as its input (with the run that wrote that commit, so Marquez
links it to that run's version) and the revert commit as its output (``version`` + ``lakefs_commit``,
``datasetType`` MODEL for a model). A prediction made after a revert thus leads, through the revert
run, to the training run of the model it really used. START and FAIL report no datasets.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlrepo.exceptions import CommitNotAncestorError
from airflow_mlrepo.hooks.lakefs import LakeFSCommit, LakeFSHook
from airflow_mlrepo.lineage.ids import task_lineage_ids
from airflow_mlrepo.links.lakefs import LakeFSOutputCommitLink, record_output_commit_url
from airflow_mlrepo.links.lakefs_ui import LakeFSUI
from airflow_mlrepo.provenance import LAKEFS_AIRFLOW, airflow_task_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

#: Metadata key of a revert commit naming the commit it reverted.
REVERTED_COMMIT = "mlrepo.reverted_commit"
#: How far back on the branch a retry looks for the revert its first attempt made.
IDEMPOTENCY_LOOKBACK = 200


class LakeFSRevertOperator(BaseOperator):
    """Revert ``commit`` on ``branch`` of ``repository``; return the reverted and the new head commit.

    :param repository: lakeFS repository. Templated.
    :param branch: the branch to revert on. Templated.
    :param commit: the commit to undo (id, tag or ref expression such as ``main~1``); empty (default):
        the branch head, i.e. the latest model or the latest data commit. Templated.
    :param parent_number: for a merge commit, the parent whose side is kept (1-based); default 1,
        which undoes what the merge brought in (every commit of the training and inference operators
        is a merge of its attempt branch).
    :param commit_message: message of the revert commit. Templated.
    :param paths: the datasets on the branch this revert changes, for lineage (e.g. ``["model"]``,
        ``["data"]``); default: the paths of the task's ``lakefs://`` outlets on that branch, else the
        whole branch.
    :param lakefs_conn_id: Airflow connection of type ``lakefs``.

    A retry does not revert twice: a revert commit this task instance already made (same DAG, run
    and task, recorded in the commit metadata) is returned instead.
    """

    template_fields: Sequence[str] = ("repository", "branch", "commit", "commit_message")
    operator_extra_links = (LakeFSOutputCommitLink(),)
    ui_color = "#f4c7c3"

    def __init__(
        self,
        *,
        repository: str,
        branch: str,
        commit: str = "",
        parent_number: int | None = None,
        commit_message: str | None = None,
        paths: Sequence[str] | None = None,
        lakefs_conn_id: str = LakeFSHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.paths = list(paths) if paths is not None else None
        self.repository = repository
        self.branch = branch
        self.commit = commit
        self.parent_number = parent_number
        self.commit_message = commit_message
        self.lakefs_conn_id = lakefs_conn_id
        #: What the extra link shows (None until this attempt made or found its revert commit).
        self.output_commit_url: str | None = None

    @cached_property
    def lakefs_hook(self) -> LakeFSHook:
        return LakeFSHook(self.lakefs_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.lakefs_hook
        ti = context["ti"]
        identity = {"mlrepo.dag_id": ti.dag_id, "mlrepo.run_id": context["run_id"], "mlrepo.task_id": ti.task_id}
        earlier = self._earlier_revert(identity)
        if earlier is not None:
            self.log.info("This task already reverted %s with %s; not reverting again", *earlier)
            reverted_id, head = earlier
            return self._finish(context, reverted_id, head, reused=True)
        target = hook.get_commit(self.repository, (self.commit or "").strip() or self.branch)
        if not hook.is_ancestor(self.repository, target.id, self.branch):
            raise CommitNotAncestorError(
                f"Task '{self.task_id}': commit {target.id} ('{self.commit}') is not in the history of branch "
                f"'{self.branch}' of repository '{self.repository}': nothing to revert there",
                repository=self.repository,
                ref=self.branch,
            )
        parent_number = self.parent_number or (1 if target.is_merge else None)
        from airflow.sdk.configuration import conf

        base_url = conf.get("api", "base_url", fallback="http://localhost:8080")
        ids = task_lineage_ids(ti)
        metadata = {
            **identity,
            **(ids.commit_metadata() if ids is not None else {}),
            REVERTED_COMMIT: target.id,
            "mlrepo.reverted_message": target.message[:500],
            LAKEFS_AIRFLOW + "dag_id": ti.dag_id,
            LAKEFS_AIRFLOW + "dag_run_id": context["run_id"],
            LAKEFS_AIRFLOW + "task_id": ti.task_id,
            LAKEFS_AIRFLOW + "url[url:ui]": airflow_task_url(base_url, ti.dag_id, context["run_id"], ti.task_id, -1),
        }
        message = self.commit_message or f"Revert {target.id[:12]}: {target.message}"
        head = hook.revert(
            self.repository, self.branch, target.id, parent_number=parent_number, message=message, metadata=metadata
        )
        self.log.info(
            "Reverted %s on branch '%s' of repository '%s': new head %s",
            target.id,
            self.branch,
            self.repository,
            head.id,
        )
        return self._finish(context, target.id, head, reused=False)

    def _earlier_revert(self, identity: dict[str, str]) -> tuple[str, LakeFSCommit] | None:
        for commit in self.lakefs_hook.log_commits(
            self.repository, self.branch, amount=IDEMPOTENCY_LOOKBACK, first_parent=True
        ):
            if REVERTED_COMMIT in commit.metadata and all(commit.metadata.get(k) == v for k, v in identity.items()):
                return commit.metadata[REVERTED_COMMIT], commit
        return None

    def _finish(self, context: Context, reverted_id: str, head: LakeFSCommit, *, reused: bool) -> dict[str, Any]:
        # what lineage reports on COMPLETE (the listener hands this operator to the methods below)
        self.output_commit_id = head.id
        self.restored_commit_id = self._restored(reverted_id)
        settings = self.lakefs_hook.settings
        url = LakeFSUI(settings.browser_url).commit(self.repository, head.id)
        record_output_commit_url(self, context["ti"], url)
        return {
            "repository": self.repository,
            "branch": self.branch,
            "reverted_commit_id": reverted_id,
            "commit_id": head.id,
            "reused": reused,
        }

    def _restored(self, reverted_id: str) -> str | None:
        """The commit whose content the revert brought back: the kept parent of the reverted commit."""
        try:
            reverted = self.lakefs_hook.get_commit(self.repository, reverted_id)
        except Exception:
            return None
        index = (self.parent_number or 1) - 1
        return reverted.parents[index] if len(reverted.parents) > index else None

    def lineage_paths(self) -> list[str]:
        if self.paths is not None:
            return [str(path).strip("/") for path in self.paths]
        from airflow_mlrepo.locations import LakeFSLocation

        found = []
        for outlet in self.outlets or []:
            uri = getattr(outlet, "uri", "")
            if isinstance(uri, str) and uri.startswith("lakefs://"):
                location = LakeFSLocation.parse(uri)
                if (location.repository, location.ref) == (self.repository, self.branch):
                    found.append(location.path.strip("/"))
        return found or [""]

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow_mlrepo.lineage.operator_lineage import revert_on_start

        return revert_on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_mlrepo.lineage.operator_lineage import revert_on_complete

        return revert_on_complete(self)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_mlrepo.lineage.operator_lineage import revert_on_start

        return revert_on_start(self)
