"""``mlrepo``: the command line of airflow-mlrepo.

One sub-parser per command group (``mlrepo stack ...``, ``mlrepo demo``, ``mlrepo provenance``):
a ``_add_<group>_commands(groups)`` function that sets ``handler`` defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlrepo_devstack import stack

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_mlrepo.hooks.lakefs import LakeFSHook

EXIT_OK = 0
EXIT_FAILED = 1


def _component_list(raw: str) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in stack.COMPONENTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(stack.COMPONENTS)}; got {raw!r}"
        )
    return names


def _print_components(current: stack.StackStatus) -> None:
    for component in current:
        print(component.describe())


def _warn_about_marquez(current: stack.StackStatus) -> None:
    marquez = current[stack.MARQUEZ]
    if marquez.state == "unavailable":
        print(
            f"\n*** WARNING: Marquez is UNAVAILABLE; lineage will not be recorded. ***\n    {marquez.detail}",
            file=sys.stderr,
        )


def _stack_up(args: argparse.Namespace) -> int:
    try:
        current = stack.up(args.only)
    except stack.StackError as err:
        print(f"mlrepo stack up: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    _print_components(current)
    env = stack.read_env()
    print()
    print(f"lakeFS endpoint:          {env['LAKEFS_ENDPOINT']}")
    print(f"lakeFS access key id:     {env['LAKEFS_ACCESS_KEY_ID']}")
    print(f"lakeFS secret access key: {env['LAKEFS_SECRET_ACCESS_KEY']}")
    print(f"stack.env:                {current.env_file}  (mode 0600)")
    print('load it with:             eval "$(mlrepo stack env)"')
    _warn_about_marquez(current)
    return EXIT_OK if current.required_up else EXIT_FAILED


def _stack_down(args: argparse.Namespace) -> int:
    try:
        stack.down(args.only)
    except stack.StackError as err:
        print(f"mlrepo stack down: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    _print_components(stack.status())
    return EXIT_OK


def _stack_status(args: argparse.Namespace) -> int:
    try:
        current = stack.status()
    except stack.StackError as err:
        print(f"mlrepo stack status: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(
            json.dumps(
                {
                    component.name: {
                        "state": component.state,
                        "endpoint": component.endpoint,
                        "detail": component.detail,
                        "pid": component.pid,
                        "version": component.version,
                        **dict(component.extra_endpoints),
                    }
                    for component in current
                },
                indent=2,
            )
        )
    else:
        _print_components(current)
        print(f"\nstack.env: {current.env_file}")
    return EXIT_OK if current.required_up else EXIT_FAILED


def _stack_env(_args: argparse.Namespace) -> int:
    try:
        values = stack.read_env()
    except stack.StackError as err:
        print(f"mlrepo stack env: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")
    return EXIT_OK


def _add_stack_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack_parser = groups.add_parser(
        "stack",
        help="the local lakeFS + PostgreSQL + Marquez + Airflow DB stack",
        description=(
            "Manage the local service stack. State lives in $MLREPO_HOME "
            "(default ~/.local/share/airflow-mlrepo); ports come from MLREPO_LAKEFS_PORT, "
            "MLREPO_POSTGRES_PORT, MLREPO_MARQUEZ_PORT, MLREPO_MARQUEZ_ADMIN_PORT."
        ),
    )
    commands = stack_parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    only_help = f"comma-separated subset of: {', '.join(stack.COMPONENTS)}"

    up_parser = commands.add_parser("up", help="start (or reuse) the stack and write stack.env")
    up_parser.add_argument("--only", type=_component_list, default=None, help=only_help)
    up_parser.set_defaults(handler=_stack_up)

    down_parser = commands.add_parser("down", help="stop the stack (data is kept)")
    down_parser.add_argument("--only", type=_component_list, default=None, help=only_help)
    down_parser.set_defaults(handler=_stack_down)

    status_parser = commands.add_parser("status", help="show what is running")
    status_parser.add_argument("--json", action="store_true", help="machine-readable output")
    status_parser.set_defaults(handler=_stack_status)

    env_parser = commands.add_parser("env", help='print `export KEY=value` lines; use: eval "$(mlrepo stack env)"')
    env_parser.set_defaults(handler=_stack_env)


def _lakefs_hook_for_cli(conn_id: str) -> LakeFSHook:
    """The Airflow connection ``conn_id`` when it is defined in the environment, else the local stack's lakeFS."""
    from airflow_mlrepo.hooks.lakefs import LakeFSConnectionSettings, LakeFSHook

    if (
        os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        or not stack.StackSettings.from_environ().stack_env_path.exists()
    ):
        return LakeFSHook(conn_id)
    env = stack.read_env()
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
    try:
        env = stack.read_env()
    except stack.StackError:
        env = {}
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
        try:
            marquez = stack.read_env().get("MARQUEZ_URL")
        except stack.StackError:
            marquez = None
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


def _demo(args: argparse.Namespace) -> int:
    from mlrepo_devstack import demo

    from airflow_mlrepo.exceptions import MlRepoError

    try:
        current = stack.up([stack.LAKEFS])
        if not current[stack.LAKEFS].is_up:
            print(f"mlrepo demo: error: lakeFS is not up: {current[stack.LAKEFS].detail}", file=sys.stderr)
            return EXIT_FAILED
        env = stack.read_env()
        settings = demo.DemoSettings.from_stack(
            env, home=args.home, dags_source=args.dags, airflow_ui=args.airflow_url, repository_suffix=args.suffix
        )
        demo.main_entry(env, settings)
    except MlRepoError as err:
        print(f"mlrepo demo: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _add_demo_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "demo",
        help="run the iris workflow end to end on the local stack and show its provenance",
        description=(
            "Create the iris repositories in the local lakeFS, seed simulated days of data, train and "
            "predict through Airflow (airflow dags test, local runner), retrain on new data, backtest an "
            "old run with the new model, and print the provenance of the newest prediction. Safe to run again."
        ),
    )
    parser.add_argument("--home", type=Path, default=None, help="demo state dir (default $MLREPO_HOME/demo)")
    parser.add_argument(
        "--dags", type=Path, default=None, help="folder with the example DAGs (default: the checkout's dags/)"
    )
    parser.add_argument("--airflow-url", default=None, help="Airflow UI base URL recorded in provenance links")
    parser.add_argument("--suffix", default="", help=argparse.SUPPRESS)  # tests: iris-train-<suffix>, ...
    parser.set_defaults(handler=_demo)


def _add_lineage_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airflow_mlrepo.lineage.commands import add_lineage_commands

    add_lineage_commands(groups)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlrepo", description="airflow-mlrepo: reproducible ML pipelines on Airflow + lakeFS."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    _add_stack_commands(groups)
    _add_demo_commands(groups)
    _add_provenance_commands(groups)
    _add_lineage_commands(groups)
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
