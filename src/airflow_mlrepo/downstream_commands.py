"""``mlrepo provenance --downstream`` and ``mlrepo recompute --downstream``: the command-line side of
:mod:`airflow_mlrepo.downstream` and :mod:`airflow_mlrepo.recompute`.

Both take a commit (``lakefs://repo/<commit>`` or ``lakefs://repo/<ref>``), scan every repository of
the lakeFS server (or those given with ``--repository``) and find what derives from it. ``recompute``
then clears, through Airflow's REST API, the runs whose current outputs a clear recomputes without
the commit, and reports what it cleared and what needs a new run instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

from airflow_mlrepo.exceptions import MlRepoError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from airflow_mlrepo.hooks.lakefs import LakeFSHook
    from airflow_mlrepo.provenance_report import Links

EXIT_OK = 0
EXIT_FAILED = 1


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        action="append",
        default=None,
        metavar="NAME",
        help="repository to search for derived outputs (repeatable; default: every repository)",
    )


def report_downstream(hook: LakeFSHook, location: str, repositories: list[str] | None, links: Links) -> object:
    from airflow_mlrepo.downstream import downstream, repository_names

    return downstream(hook, location, repositories or repository_names(hook), links=links)


def print_downstream(hook: LakeFSHook, args: argparse.Namespace, links: Links) -> int:
    """The body of ``mlrepo provenance --downstream LOCATION``."""
    from airflow_mlrepo.downstream import DownstreamReport, render_json, render_tree, summary

    try:
        report = report_downstream(hook, args.location, args.repository, links)
    except MlRepoError as err:
        print(f"mlrepo provenance: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    assert isinstance(report, DownstreamReport)
    if args.json:
        print(render_json(report))
        return EXIT_OK
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 240)
    console.print(render_tree(report))
    console.print(summary(report.to_dict()))
    return EXIT_OK


def recompute(hook: LakeFSHook, args: argparse.Namespace, links: Links) -> int:
    """The body of ``mlrepo recompute --downstream LOCATION``."""
    from airflow_mlrepo.downstream import DownstreamReport, recompute_plan, runs_to_clear
    from airflow_mlrepo.recompute import AirflowREST

    try:
        report = report_downstream(hook, args.downstream, args.repository, links)
        assert isinstance(report, DownstreamReport)
        plan = recompute_plan(report)
        runs = runs_to_clear(plan)
        api = AirflowREST(
            args.airflow_api,
            token=os.environ.get("AIRFLOW_API_TOKEN"),
            user=os.environ.get("AIRFLOW_API_USER"),
            password=os.environ.get("AIRFLOW_API_PASSWORD"),
        )
        cleared = {} if args.dry_run else {run: api.clear_run(*run) for run in runs}
        states = api.wait(runs, args.timeout) if args.wait and runs and not args.dry_run else {}
    except MlRepoError as err:
        print(f"mlrepo recompute: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    result = {
        "commit": f"lakefs://{report.repository}/{report.commit_id}",
        "dry_run": args.dry_run,
        "cleared": [
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "tasks": cleared.get((dag_id, run_id), []),
                "state": states.get((dag_id, run_id)),
            }
            for dag_id, run_id in runs
        ],
        "outputs": [item.to_dict() for item in plan],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        verb = "would clear" if args.dry_run else "cleared"
        print(f"{len(runs)} Airflow run(s) {verb} for outputs derived from {result['commit']}:")
        for entry in result["cleared"]:
            state = f" -> {entry['state']}" if entry["state"] else ""
            print(f"  {entry['dag_id']} {entry['run_id']}{state}")
        for item in plan:
            if not item.clearable:
                out = item.output
                print(f"  not cleared: {out.output_kind} lakefs://{out.repository}/{out.commit_id[:12]}: {item.reason}")
    return EXIT_OK


def add_recompute_command(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], handler: Callable[[argparse.Namespace], int]
) -> None:
    parser = groups.add_parser(
        "recompute",
        help="clear the Airflow runs of every current output derived from a commit, so they run again",
        description=(
            "Find every model and prediction derived from COMMIT (as `mlrepo provenance --downstream`) and "
            "clear, through Airflow's REST API, the runs a clear recomputes without it (predictions whose "
            "model was chosen as 'latest'). Outputs pinned to the commit are reported: they need a new run."
        ),
    )
    parser.add_argument("--downstream", required=True, metavar="COMMIT", help="lakefs://repo/<commit or ref>")
    add_scan_arguments(parser)
    parser.add_argument("--airflow-api", default=None, help="Airflow api-server URL (default: [api] base_url)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be cleared, clear nothing")
    parser.add_argument("--wait", action="store_true", help="wait until the cleared runs finished")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits (default 1800)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--conn-id", default="lakefs_default", help="Airflow connection of lakeFS")
    parser.set_defaults(handler=handler)


__all__ = ["add_recompute_command", "add_scan_arguments", "print_downstream", "recompute"]
