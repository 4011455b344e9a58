"""``mlrepo cleanup attempts lakefs://REPOSITORY [--apply]``: remove leftover attempt branches.

A task killed with lakeFS, or a run deleted before its task ended, can leave its attempt branch
behind (``mlrepo-<task>-...``, with staged objects). The next task of the same DAG on the
repository removes those of its DAG; this command removes any, across DAGs. It lists every attempt
branch of the repository with what it decided and why (:mod:`airflow_mlrepo.operators.attempts`),
and deletes only with ``--apply``. Task-instance states come from the Airflow metadata database,
as Airflow's own commands read it: run it where Airflow is configured (``AIRFLOW_HOME``, or
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import AirflowAPIError, MlRepoError
from airflow_mlrepo.locations import validate_repository
from airflow_mlrepo.operators.attempts import (
    ATTEMPT_BRANCH_PREFIX,
    AttemptBranch,
    KnownTaskInstance,
    TaskInstanceId,
    Verdict,
    dag_key,
    judge,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

EXIT_OK = 0
EXIT_FAILED = 1


def add_cleanup_commands(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], handler: Callable[[argparse.Namespace], int]
) -> None:
    parser = groups.add_parser("cleanup", help="remove what killed or deleted tasks left in lakeFS")
    commands = parser.add_subparsers(dest="cleanup_command", metavar="COMMAND", required=True)
    attempts = commands.add_parser(
        "attempts",
        help="list (and with --apply delete) attempt branches whose task instance is finished or gone",
        description=(
            "List every attempt branch (mlrepo-...) of REPOSITORY with whether it is a leftover and why. "
            "A branch is a leftover when its task instance is finished or no longer exists in Airflow; "
            "a branch of a running, queued, deferred or up-for-retry task instance is kept. Nothing is "
            "deleted without --apply."
        ),
    )
    attempts.add_argument("location", metavar="REPOSITORY", help="lakefs://repository (or the repository name)")
    attempts.add_argument("--apply", action="store_true", help="delete the leftovers (default: only list them)")
    attempts.add_argument("--json", action="store_true", help="print the decisions as JSON")
    attempts.add_argument(
        "--conn-id",
        default="lakefs_default",
        help="Airflow connection of lakeFS (default lakefs_default; without it in the environment, the local stack)",
    )
    attempts.set_defaults(handler=handler)


def repository_of(location: str) -> str:
    """``lakefs://repo`` (a trailing slash allowed) or ``repo`` -> ``repo``, validated."""
    name = location.removeprefix("lakefs://").rstrip("/")
    if "/" in name:
        raise MlRepoError(f"'{location}' names more than a repository: give lakefs://<repository>")
    return validate_repository(name)


def known_task_instances(branches: Iterable[AttemptBranch]) -> tuple[list[str], list[KnownTaskInstance]]:
    """Every DAG id of the metadata database, and the task instances of the DAGs the branches name."""
    from airflow.models.dag import DagModel
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    wanted = {branch.dag_key for branch in branches}
    try:
        with create_session() as session:
            dag_ids = set(session.scalars(select(DagModel.dag_id))) | set(session.scalars(select(TI.dag_id).distinct()))
            named = sorted(dag_id for dag_id in dag_ids if dag_key(dag_id) in wanted)
            query = select(TI.dag_id, TI.run_id, TI.task_id, TI.map_index, TI.state).where(TI.dag_id.in_(named))
            rows = session.execute(query).all() if named else []
    except SQLAlchemyError as err:
        raise AirflowAPIError(
            f"could not read task instances from the Airflow metadata database ({type(err).__name__}): run this "
            "where Airflow is configured (AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
        ) from err
    instances = [
        KnownTaskInstance(
            TaskInstanceId(dag_id, run_id, task_id, int(map_index)),
            None if state is None else str(getattr(state, "value", state)),
        )
        for dag_id, run_id, task_id, map_index, state in rows
    ]
    return sorted(dag_ids), instances


def decide(hook: LakeFSHook, repository: str) -> list[Verdict]:
    """What to do with each attempt branch of ``repository``."""
    names = hook.list_branches(repository, ATTEMPT_BRANCH_PREFIX)
    parsed = [branch for branch in map(AttemptBranch.parse, names) if branch is not None]
    dag_ids, instances = known_task_instances(parsed) if parsed else ([], [])
    return judge(names, dag_ids, instances, every_dag_known=True)


def cleanup_attempts(hook: LakeFSHook, args: argparse.Namespace) -> int:
    """The body of ``mlrepo cleanup attempts``."""
    try:
        repository = repository_of(args.location)
        verdicts = decide(hook, repository)
        deleted: list[str] = []
        if args.apply:
            for verdict in verdicts:
                if verdict.delete:
                    hook.delete_branch(repository, verdict.branch, missing_ok=True)
                    deleted.append(verdict.branch)
    except MlRepoError as err:
        print(f"mlrepo cleanup attempts: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    leftovers = [v for v in verdicts if v.delete]
    if args.json:
        document = {
            "repository": repository,
            "applied": bool(args.apply),
            "branches": [{"branch": v.branch, "leftover": v.delete, "reason": v.reason} for v in verdicts],
            "deleted": deleted,
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    for verdict in verdicts:
        action = ("deleted" if args.apply else "would delete") if verdict.delete else "keep"
        print(f"{action:<13} {verdict.branch}  ({verdict.reason})")
    if args.apply:
        print(f"{len(deleted)} leftover attempt branch(es) deleted in {repository}")
    elif leftovers:
        print(f"{len(leftovers)} leftover attempt branch(es) in {repository}; run again with --apply to delete them")
    else:
        print(f"no leftover attempt branches in {repository}")
    return EXIT_OK
