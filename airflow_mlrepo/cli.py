"""``mlrepo``: the command line of airflow-mlrepo.

One sub-parser per command group (``mlrepo stack ...`` today; ``demo`` and ``provenance`` plug in
the same way: a ``_add_<group>_commands(groups)`` function that sets ``handler`` defaults).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from typing import TYPE_CHECKING

from airflow_mlrepo import stack

if TYPE_CHECKING:
    from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlrepo", description="airflow-mlrepo: reproducible ML pipelines on Airflow + lakeFS."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    _add_stack_commands(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="mlrepo: %(message)s",
        stream=sys.stderr,
    )
    try:
        exit_code: int = args.handler(args)
    except BrokenPipeError:  # e.g. `mlrepo stack status | head -1`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return EXIT_FAILED
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
