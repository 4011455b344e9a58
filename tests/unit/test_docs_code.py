"""Code in the docs comes from the executed example DAGs: the embedded copies must match the files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMBEDS = [("docs/how-to/write-a-dag.md", "dags/iris_daily.py")]


@pytest.mark.parametrize(("doc", "source"), EMBEDS)
def test_doc_embeds_the_example_verbatim(doc: str, source: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)
    assert (ROOT / source).read_text() in blocks, f"{doc} no longer embeds {source} as it is"
