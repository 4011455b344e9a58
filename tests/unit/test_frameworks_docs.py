"""docs/frameworks/: the table lists exactly the frameworks tests/frameworks runs, every framework
has its page, and every ``--8<--`` snippet in those pages names a file (and section) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.frameworks.test_framework_examples import EXAMPLES, EXPECTED_MODELS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "frameworks"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', flags=re.M)


def table_rows() -> dict[str, list[str]]:
    """The index table's rows by their first cell (the framework's name, in backticks)."""
    rows: dict[str, list[str]] = {}
    for line in (DOCS / "index.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) > 1:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_table_lists_exactly_the_frameworks_the_tier_runs() -> None:
    assert sorted(table_rows()) == sorted(EXPECTED_MODELS) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_table_row_matches_the_tested_model(name: str) -> None:
    header = next(line for line in (DOCS / "index.md").read_text().splitlines() if line.startswith("| name |"))
    columns = [cell.strip() for cell in header.strip().strip("|").split("|")][1:]
    row = dict(zip(columns, table_rows()[name], strict=True))
    for path in EXPECTED_MODELS[name].required:
        if "/_" not in path:  # spark's markers are summarised in the table, not listed
            assert f"`{path}`" in row["files under `model/` in lakeFS"], (name, path)
    assert "`as_of` reproduction" in row["tested"]
    assert (DOCS / f"{name}.md").exists(), f"docs/frameworks/{name}.md is missing"
    page = (DOCS / f"{name}.md").read_text()
    example = EXAMPLES[name]
    assert f"mlrepo.model.framework={example.framework}" in page
    assert f"mlrepo.model.format={example.model_format}" in page


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_snippets_name_existing_files_and_sections(page: str) -> None:
    for target in SNIPPET.findall((DOCS / page).read_text()):
        path, _, section = target.partition(":")
        source = ROOT / path
        assert source.is_file(), f"{page}: snippet {target!r} names no file"
        if section:
            text = source.read_text()
            assert f"--8<-- [start:{section}]" in text, f"{page}: no section {section!r} in {path}"
            assert f"--8<-- [end:{section}]" in text, f"{page}: section {section!r} in {path} is not closed"
