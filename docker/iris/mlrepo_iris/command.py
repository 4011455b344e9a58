"""How the example container commands run: progress on stdout, one clear error line on stderr.

Exit codes: 0 success, 1 the data or lakeFS let the command down, 2 the contract (environment)
is incomplete or malformed. Anything else is a bug and ends with Python's traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn

from mlrepo_sdk.contract import ContractError
from mlrepo_sdk.lakefs_io import LakeFSError

from mlrepo_iris.dataset import IrisDataError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_FAILED = 1
EXIT_CONTRACT = 2

ENVIRONMENT_HELP = """\
environment (docs/reference/container-contract.md):
  MLREPO_INPUT_<NAME>       pinned input, lakefs://<repository>/<commit id>/<path> (or MLREPO_INPUTS JSON)
  MLREPO_MODEL              pinned model location (inference)
  MLREPO_OUTPUT             lakefs://<repository>/<attempt branch>/<path>: where to write; never commits
  MLREPO_PARAMS             hyperparameters, a JSON object
  LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID, LAKEFS_SECRET_ACCESS_KEY
"""


class Progress:
    """Progress lines on stdout, prefixed with the command's name."""

    def __init__(self, prog: str) -> None:
        self.prog = prog

    def __call__(self, message: str) -> None:
        print(f"[{self.prog}] {message}", flush=True)

    def warn(self, message: str) -> None:
        print(f"{self.prog}: warning: {message}", file=sys.stderr, flush=True)


def run(
    prog: str,
    description: str,
    body: Callable[[Progress], None],
    argv: Sequence[str] | None = None,
) -> NoReturn:
    """Parse ``--help`` only (the contract is the environment), run ``body``, exit with its status."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}",
        description=description,
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    name = prog.rsplit(".", 1)[-1]
    try:
        body(Progress(name))
    except ContractError as exc:
        fail(name, f"{exc}", EXIT_CONTRACT)
    except (IrisDataError, LakeFSError) as exc:
        fail(name, f"{exc}", EXIT_FAILED)
    sys.stdout.flush()
    sys.exit(0)


def fail(name: str, message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)
