"""Code in the docs comes from the executed example DAGs: the embedded copies must match the files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Where included code may come from, all executed by tests: the example DAGs, the example containers, the
#: container SDK they run on, and the docs' own examples (docs/examples/; tests/integration/test_container_example.py).
EXAMPLE_ROOTS = ("dags/", "docker/", "sdk/", "docs/examples/")
EMBEDS = [
    ("docs/how-to/write-a-dag.md", "dags/iris_daily.py"),
    ("docs/how-to/retrain-and-predict-on-commits.md", "dags/iris_training.py"),
    ("docs/how-to/retrain-and-predict-on-commits.md", "dags/iris_inference.py"),
    ("docs/how-to/backfill-and-backtest.md", "dags/iris_backtest.py"),
    ("docs/how-to/revert.md", "dags/iris_revert.py"),
    ("docs/concepts/datums.md", "dags/iris_batch_scoring.py"),
]


def _includes(block: str) -> list[str]:
    """Files a block includes with pymdownx.snippets: ``--8<-- "path"`` (or ``"path:section"``, ``"path:1:9"``)."""
    return [entry.split(":", 1)[0] for entry in re.findall(r'^--8<-- "([^"]+)"\s*$', block, flags=re.M)]


@pytest.mark.parametrize(("doc", "source"), EMBEDS)
def test_doc_embeds_the_example_verbatim(doc: str, source: str) -> None:
    """The page shows the file as it is: a verbatim copy, or (docs site) the file itself included."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)
    included = [path for block in blocks for path in _includes(block)]
    assert (ROOT / source).read_text() in blocks or source in included, f"{doc} no longer embeds {source} as it is"


def test_every_included_code_file_is_an_example_that_exists() -> None:
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        for path in _includes(doc.read_text()):
            assert (ROOT / path).is_file(), f"{doc.relative_to(ROOT)} includes {path}, which does not exist"
            assert path.startswith(EXAMPLE_ROOTS), (
                f"{doc.relative_to(ROOT)}: code in the docs comes from the examples ({', '.join(EXAMPLE_ROOTS)}), "
                f"not {path}"
            )
