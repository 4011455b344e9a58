"""``mlrepo stack ...`` and ``mlrepo demo``: the dev stack's commands, added to the provider's ``mlrepo``.

The provider's command line (:mod:`airflow_mlrepo.cli`) loads these through the entry point groups
``airflow_mlrepo.cli`` (command groups) and ``airflow_mlrepo.cli_environment`` (the local stack's
lakeFS, Airflow and Marquez as defaults), so the provider never imports the dev stack.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from mlrepo_devstack import stack

EXIT_OK = 0
EXIT_FAILED = 1


def stack_environment() -> dict[str, str]:
    """The running local stack's ``stack.env`` (lakeFS endpoint and keys, Airflow and Marquez URLs), or nothing."""
    if not stack.StackSettings.from_environ().stack_env_path.exists():
        return {}
    try:
        return dict(stack.read_env())
    except stack.StackError:
        return {}


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
    print("lakeFS secret access key: in stack.env (LAKEFS_SECRET_ACCESS_KEY; never printed, so never in a log)")
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


def add_stack_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _demo(args: argparse.Namespace) -> int:
    from airflow_mlrepo.exceptions import MlRepoError
    from mlrepo_devstack import demo

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


def add_demo_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
