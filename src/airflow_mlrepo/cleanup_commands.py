"""``mlrepo cleanup attempts lakefs://REPOSITORY [--apply]``: remove leftover attempt branches.

A task killed with lakeFS, or a run deleted before its task ended, can leave its attempt branch
behind (``mlrepo-<task>-...``, with staged objects), and a killed datum pipeline task its run's
branches (``mlrepo-d-<run key>-...``). The next task of the same DAG (the next plan of the same
pipeline) on the repository removes those; this command removes any, across DAGs. It lists every attempt
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
    KnownDatumRun,
    KnownTaskInstance,
    TaskInstanceId,
    Verdict,
    branch_safe,
    dag_key,
    datum_run_key_of,
    judge,
    old_instance_key_of,
    state_name,
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
            "A branch is a leftover when its task instance is finished or no longer exists in Airflow "
            "(a datum pipeline branch, mlrepo-d-...: when its DAG run is finished or gone); a branch of "
            "a running, queued, deferred or up-for-retry task instance is kept. Nothing is deleted "
            "without --apply."
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


def known_to_airflow(names: Iterable[str]) -> tuple[list[str], list[KnownTaskInstance], list[KnownDatumRun]]:
    """What the Airflow metadata database knows about the owners of these branch names.

    Every DAG id; the task instances of the DAGs the attempt branches name (and, for names of the
    format before the DAG key, of the tasks they name); the datum pipeline runs (their plan's XCom
    carries the run key; the state is the DAG run's). Each query runs only when a name needs it.
    """
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from airflow_mlrepo.operators.datums import PLAN_XCOM_KEY

    names = list(names)
    wanted = {branch.dag_key for branch in map(AttemptBranch.parse, names) if branch is not None}
    old_format = [name for name in names if old_instance_key_of(name) is not None]
    datum_keys = {key for key in map(datum_run_key_of, names) if key is not None}
    columns = (TI.dag_id, TI.run_id, TI.task_id, TI.map_index, TI.state)
    try:
        with create_session() as session:
            dag_ids = set(session.scalars(select(DagModel.dag_id))) | set(session.scalars(select(TI.dag_id).distinct()))
            named = sorted(dag_id for dag_id in dag_ids if dag_key(dag_id) in wanted)
            rows = list(session.execute(select(*columns).where(TI.dag_id.in_(named))).all()) if named else []
            if old_format:
                task_ids = [t for t in session.scalars(select(TI.task_id).distinct()) if _named_task(t, old_format)]
                rows += session.execute(select(*columns).where(TI.task_id.in_(task_ids))).all() if task_ids else []
            plans = []
            if datum_keys:
                query = (
                    select(XComModel.dag_id, XComModel.run_id, XComModel.value, DagRun.state)
                    .join(DagRun, XComModel.dag_run_id == DagRun.id)
                    .where(XComModel.key == PLAN_XCOM_KEY)
                )
                plans = list(session.execute(query).all())
    except SQLAlchemyError as err:
        raise AirflowAPIError(
            f"could not read task instances from the Airflow metadata database ({type(err).__name__}): run this "
            "where Airflow is configured (AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
        ) from err
    instances = {
        KnownTaskInstance(TaskInstanceId(dag_id, run_id, task_id, int(map_index)), state_name(state))
        for dag_id, run_id, task_id, map_index, state in rows
    }
    runs = []
    for row in plans:
        plan = XComModel.deserialize_value(row)
        if isinstance(plan, dict) and isinstance(plan.get("run_key"), str):
            runs.append(
                KnownDatumRun(plan["run_key"], row.dag_id, row.run_id, str(plan.get("pipeline")), state_name(row.state))
            )
    return sorted(dag_ids), sorted(instances, key=str), runs


def _named_task(task_id: str, old_names: Iterable[str]) -> bool:
    prefix = f"{ATTEMPT_BRANCH_PREFIX}{branch_safe(task_id)}-"
    return any(name.startswith(prefix) for name in old_names)


def decide(hook: LakeFSHook, repository: str) -> list[Verdict]:
    """What to do with each attempt branch of ``repository``."""
    names = hook.list_branches(repository, ATTEMPT_BRANCH_PREFIX)
    known = [
        name
        for name in names
        if AttemptBranch.parse(name) or datum_run_key_of(name) or old_instance_key_of(name) is not None
    ]
    dag_ids, instances, runs = known_to_airflow(known) if known else ([], [], [])
    return judge(names, dag_ids, instances, every_dag_known=True, datum_runs=runs)


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
