"""``mlrepo``: the command line of airflow-mlrepo.

One sub-parser per command group (``mlrepo provenance``, ``mlrepo recompute``, ``mlrepo lineage``,
``mlrepo cleanup``): a ``_add_<group>_commands(groups)`` function that sets ``handler`` defaults.
Other distributions add groups through the entry point group ``airflow_mlrepo.cli`` (a callable
taking the sub-parsers; the dev stack adds ``mlrepo stack`` and ``mlrepo demo`` so) and default
endpoints through ``airflow_mlrepo.cli_environment`` (a callable returning ``LAKEFS_ENDPOINT``,
``LAKEFS_ACCESS_KEY_ID``, ``LAKEFS_SECRET_ACCESS_KEY``, ``AIRFLOW_API_URL``, ``MARQUEZ_URL``, used
when no Airflow connection or configuration names them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

EXIT_OK = 0
EXIT_FAILED = 1
#: Entry point groups other distributions extend the command line through (see the module docstring).
COMMANDS_GROUP = "airflow_mlrepo.cli"
ENVIRONMENT_GROUP = "airflow_mlrepo.cli_environment"


def local_environment() -> dict[str, str]:
    """Default endpoints from the ``airflow_mlrepo.cli_environment`` entry points (the dev stack's), merged."""
    merged: dict[str, str] = {}
    for point in entry_points(group=ENVIRONMENT_GROUP):
        merged.update(point.load()())
    return merged


def _lakefs_hook_for_cli(conn_id: str) -> LakeFSHook:
    """The Airflow connection ``conn_id`` when it is defined in the environment, else the local stack's lakeFS."""
    from airflow_mlrepo.hooks.lakefs import LakeFSConnectionSettings, LakeFSHook

    env = {} if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}") else local_environment()
    if "LAKEFS_ENDPOINT" not in env:
        return LakeFSHook(conn_id)
    return LakeFSHook.from_settings(
        LakeFSConnectionSettings(
            endpoint=env["LAKEFS_ENDPOINT"],
            access_key_id=env["LAKEFS_ACCESS_KEY_ID"],
            secret_access_key=env["LAKEFS_SECRET_ACCESS_KEY"],
        ),
        conn_id,
    )


def _configured_airflow_ui() -> str:
    """``[api] base_url`` of the Airflow configuration, else the stack's running api-server, else the default."""
    env = local_environment()
    from airflow.configuration import conf

    configured = conf.get("api", "base_url", fallback=None)
    return str(configured or env.get("AIRFLOW_API_URL") or "http://localhost:8080")


def _provenance(args: argparse.Namespace) -> int:
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airflow_mlrepo.exceptions import MlRepoError
    from airflow_mlrepo.provenance_report import Links, render_tree, trace

    try:
        hook = _lakefs_hook_for_cli(args.conn_id)
        try:
            hook.settings  # noqa: B018 - reads the connection now, to report a missing one clearly
        except AirflowNotFoundException:
            print(
                f"mlrepo provenance: error: no Airflow connection '{args.conn_id}' for lakeFS: define it "
                f"(e.g. AIRFLOW_CONN_{args.conn_id.upper()}) or start the local stack (mlrepo stack up)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        marquez = local_environment().get("MARQUEZ_URL")
        links = Links(
            lakefs_ui=args.lakefs_ui or hook.settings.browser_url,
            airflow_ui=args.airflow_url or _configured_airflow_ui(),
            marquez_api=marquez,
        )
        if args.downstream:
            from airflow_mlrepo.downstream_commands import print_downstream

            return print_downstream(hook, args, links)
        node = trace(hook, args.location, links=links)
    except MlRepoError as err:
        print(f"mlrepo provenance: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(node.to_dict(), indent=2))
    else:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 240).print(render_tree(node))
    return EXIT_OK


def _add_provenance_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "provenance",
        help="the chain of commits, code and Airflow runs behind a model, prediction or commit",
        description=(
            "Walk an output back to the model commit, training-data commit, input commits, container "
            "image and Airflow run that produced it. LOCATION is lakefs://repo/ref/path (an object or "
            "prefix) or lakefs://repo/ref (a commit)."
        ),
    )
    parser.add_argument("location", metavar="LOCATION", help="lakefs://repo/ref[/path]")
    parser.add_argument("--json", action="store_true", help="print the tree as JSON")
    parser.add_argument(
        "--conn-id",
        default="lakefs_default",
        help="Airflow connection of lakeFS (default lakefs_default; without it in the environment, the local stack)",
    )
    parser.add_argument(
        "--airflow-url", default=None, help="Airflow UI base URL for run links (default: [api] base_url)"
    )
    parser.add_argument("--lakefs-ui", default=None, help="lakeFS UI base URL for commit links (default: the endpoint)")
    parser.add_argument(
        "--downstream",
        action="store_true",
        help="list every model and prediction derived from the commit LOCATION names, transitively",
    )
    from airflow_mlrepo.downstream_commands import add_recompute_command, add_scan_arguments

    add_scan_arguments(parser)
    parser.set_defaults(handler=_provenance)
    add_recompute_command(groups, _recompute)


def _recompute(args: argparse.Namespace) -> int:
    from airflow_mlrepo.downstream_commands import recompute
    from airflow_mlrepo.provenance_report import Links

    hook = _lakefs_hook_for_cli(args.conn_id)
    airflow_ui = _configured_airflow_ui()
    args.airflow_api = args.airflow_api or airflow_ui
    return recompute(hook, args, Links(lakefs_ui=hook.settings.browser_url, airflow_ui=airflow_ui))


def _add_lineage_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airflow_mlrepo.lineage.commands import add_lineage_commands

    add_lineage_commands(groups)


def _cleanup_attempts(args: argparse.Namespace) -> int:
    from airflow_mlrepo.cleanup_commands import cleanup_attempts

    return cleanup_attempts(_lakefs_hook_for_cli(args.conn_id), args)


def _add_cleanup_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airflow_mlrepo.cleanup_commands import add_cleanup_commands

    add_cleanup_commands(groups, _cleanup_attempts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlrepo", description="airflow-mlrepo: reproducible ML pipelines on Airflow + lakeFS."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    _add_provenance_commands(groups)
    _add_lineage_commands(groups)
    _add_cleanup_commands(groups)
    for point in sorted(entry_points(group=COMMANDS_GROUP), key=lambda point: point.name):
        point.load()(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="mlrepo: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # Airflow's own info lines (config file, timezone) are noise here
        logging.getLogger("airflow").setLevel(logging.WARNING)
    try:
        exit_code: int = args.handler(args)
    except BrokenPipeError:  # e.g. `mlrepo stack status | head -1`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return EXIT_FAILED
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
