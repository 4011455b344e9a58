"""``MLREPO_DATUMS`` as the container SDK reads it."""

from __future__ import annotations

import json

import pytest
from mlrepo_sdk.contract import ContractError, read_datums


def test_datums_are_read_with_their_files_and_output_prefix() -> None:
    raw = [{"id": "a.csv", "files": {"input_data": ["records/a.csv"]}, "output": "lakefs://p/b1/scored/a.csv/"}]
    (datum,) = read_datums({"MLREPO_DATUMS": json.dumps(raw)})
    assert datum.id == "a.csv"
    assert datum.files == {"input_data": ["records/a.csv"]}
    assert (datum.output.repository, datum.output.ref, datum.output.join("predictions.csv")) == (
        "p",
        "b1",
        "scored/a.csv/predictions.csv",
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "MLREPO_DATUMS is not set"),
        ("{", "not valid JSON"),
        ('{"id": 1}', "must be a JSON list"),
        ('[{"id": "a"}]', r"MLREPO_DATUMS\[0\] must be an object"),
        ('[{"id": "a", "files": {}, "output": "s3://x"}]', r"MLREPO_DATUMS\[0\]\['output'\] is not a lakeFS URI"),
    ],
)
def test_a_malformed_datum_list_names_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ContractError, match=problem):
        read_datums({"MLREPO_DATUMS": value})
