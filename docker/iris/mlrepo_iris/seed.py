"""``python -m mlrepo_iris.seed``: put deterministic slices of the iris data set into lakeFS.

The data comes from ``sklearn.datasets.load_iris()`` (shipped inside scikit-learn: nothing is
downloaded). Part ``K`` of ``N`` holds rows ``K-1, K-1+N, K-1+2N, ...`` of the 150, so every
part has all three species and a training commit per part grows the data set step by step::

    python -m mlrepo_iris.seed --repository iris-train --branch main --path data/ --part 1 --of 3 \\
        --commit "iris part 1 of 3"
    python -m mlrepo_iris.seed --repository iris-input --branch main --path batch/ --part 2 --of 5 --inference

Training slices are ``<path>/iris-part-K.csv`` with ``sepal_length,sepal_width,petal_length,
petal_width,species``; inference slices (``--inference``) are ``<path>/inference-part-K.csv``
with ``id,sepal_length,...`` (``id`` is ``iris-NNN``, the row's index in the data set) and no
species. The same arguments always give the same bytes. lakeFS is reached through
``LAKEFS_ENDPOINT``, ``LAKEFS_ACCESS_KEY_ID`` and ``LAKEFS_SECRET_ACCESS_KEY``. Without
``--commit`` the object is only staged.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import cache
from typing import TYPE_CHECKING

from mlrepo_sdk.contract import ContractError, LakeFSLocation, read_lakefs_access
from mlrepo_sdk.lakefs_io import LakeFS, LakeFSError

from mlrepo_iris.command import EXIT_CONTRACT, EXIT_FAILED, fail
from mlrepo_iris.dataset import INFERENCE_HEADER, TRAINING_HEADER, format_number, write_csv

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "mlrepo_iris.seed"


@cache
def _iris() -> tuple[tuple[tuple[float, ...], ...], tuple[str, ...]]:
    from sklearn.datasets import load_iris  # slow to import: only when data is needed

    data = load_iris()
    rows = tuple(tuple(float(v) for v in row) for row in data.data)
    species = tuple(str(data.target_names[t]) for t in data.target)
    return rows, species


def part_indices(part: int, of: int) -> range:
    """The row indices of part ``part`` (1-based) of ``of``."""
    if of < 1 or not 1 <= part <= of:
        raise ValueError(f"part must be between 1 and {of} (--of), got --part {part} --of {of}")
    return range(part - 1, len(_iris()[0]), of)


def training_csv(part: int = 1, of: int = 1) -> bytes:
    """CSV of one training slice: the four features and ``species``."""
    rows, species = _iris()
    return write_csv(
        TRAINING_HEADER, ([*(format_number(v) for v in rows[i]), species[i]] for i in part_indices(part, of))
    )


def inference_csv(part: int = 1, of: int = 1) -> bytes:
    """CSV of one inference slice: ``id`` and the four features, no species."""
    rows, _ = _iris()
    return write_csv(
        INFERENCE_HEADER, ([f"iris-{i:03d}", *(format_number(v) for v in rows[i])] for i in part_indices(part, of))
    )


def object_name(part: int, *, inference: bool = False) -> str:
    return f"inference-part-{part}.csv" if inference else f"iris-part-{part}.csv"


def seed(
    lakefs: LakeFS,
    repository: str,
    branch: str,
    path: str,
    *,
    part: int = 1,
    of: int = 1,
    inference: bool = False,
) -> str:
    """Upload one slice under ``path`` on ``branch`` (staged, not committed); return its object path."""
    data = inference_csv(part, of) if inference else training_csv(part, of)
    target = LakeFSLocation(repository, branch, path).join(object_name(part, inference=inference))
    lakefs.upload(repository, branch, target, data)
    return target


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Write a deterministic slice of the iris data set to a lakeFS branch.",
    )
    parser.add_argument("--repository", required=True, help="lakeFS repository")
    parser.add_argument("--branch", default="main", help="branch to write to (default: main)")
    parser.add_argument("--path", default="data/", help="prefix to write under (default: data/)")
    parser.add_argument("--part", type=int, default=1, help="which slice, 1..N (default: 1)")
    parser.add_argument("--of", type=int, default=1, help="into how many slices N (default: 1, all rows)")
    parser.add_argument("--inference", action="store_true", help="write inference input (id + features)")
    parser.add_argument("--commit", metavar="MESSAGE", help="commit the branch with this message afterwards")
    args = parser.parse_args(argv)
    try:
        part_indices(args.part, args.of)
    except ValueError as exc:
        parser.error(str(exc))
    name = PROG.rsplit(".", 1)[-1]
    try:
        lakefs = LakeFS(read_lakefs_access(os.environ))
        target = seed(
            lakefs, args.repository, args.branch, args.path, part=args.part, of=args.of, inference=args.inference
        )
        print(f"wrote lakefs://{args.repository}/{args.branch}/{target}", flush=True)
        if args.commit:
            commit_id = lakefs.commit(args.repository, args.branch, args.commit, {"mlrepo_iris.seed": target})
            print(commit_id, flush=True)
    except ContractError as exc:
        fail(name, str(exc), EXIT_CONTRACT)
    except LakeFSError as exc:
        fail(name, str(exc), EXIT_FAILED)
    sys.exit(0)


if __name__ == "__main__":
    main()
