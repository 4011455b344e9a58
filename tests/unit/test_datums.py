"""Datum specs without services: globs, joins, which datums changed paths touch, batching."""

from __future__ import annotations

import pytest

from airflow_mlrepo.datums import (
    Datum,
    DatumInput,
    DatumSpec,
    DatumSpecError,
    Glob,
    batches,
    check_reprocess,
    config_fingerprint,
    datum_output_prefix,
    group_datums,
    touched_ids,
)


def spec(glob: str) -> DatumSpec:
    return DatumSpec(inputs=(DatumInput("data", "", glob),), cross=("model",))


@pytest.mark.parametrize(
    ("glob", "path", "key"),
    [
        ("/*", "a.csv", "a.csv"),
        ("/*", "day-1/a.csv", "day-1"),
        ("*", "day-1/sub/a.csv", "day-1"),
        ("/*/*", "day-1/a.csv", "day-1/a.csv"),
        ("/*/*", "a.csv", None),
        ("/*.csv", "a.txt", None),
        ("/", "x/y/z", ""),
        ("/day-[0-9]", "day-3/a.csv", "day-3"),
        ("/day-[!0-9]", "day-3/a.csv", None),
    ],
)
def test_a_file_belongs_to_the_datum_its_first_segments_name(glob: str, path: str, key: str | None) -> None:
    hit = Glob.parse(glob).datum_of(path)
    assert (hit[0] if hit else None) == key


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("/**", "'\\*\\*' is not supported"),
        ("/a//b", "empty path segment"),
        ("/(*.csv", "not closed"),
        ("/[a", "unclosed"),
    ],
)
def test_a_malformed_glob_is_refused_with_its_pattern(glob: str, problem: str) -> None:
    with pytest.raises(DatumSpecError, match=problem):
        Glob.parse(glob)


def test_files_group_into_datums_and_files_outside_the_input_or_glob_are_in_none() -> None:
    listed = {"data": ("records/", ["records/a.csv", "records/d/1.csv", "records/d/2.csv", "other/x.csv"])}
    datums = group_datums(spec("/*"), listed)
    assert {k: v.files for k, v in datums.items()} == {
        "a.csv": {"data": ["records/a.csv"]},
        "d": {"data": ["records/d/1.csv", "records/d/2.csv"]},
    }
    only_csv = group_datums(spec("/*.csv"), listed)
    assert list(only_csv) == ["a.csv"]


def test_a_join_pairs_datums_by_the_captured_value_and_drops_one_sided_values() -> None:
    joined = DatumSpec(
        inputs=(DatumInput("features", "", "/(*).csv", "$1"), DatumInput("labels", "", "/(*).json", "$1")),
    )
    listed = {
        "features": ("f/", ["f/a.csv", "f/b.csv", "f/c.csv"]),
        "labels": ("l/", ["l/a.json", "l/c.json", "l/z.json"]),
    }
    datums = group_datums(joined, listed)
    assert {k: v.files for k, v in datums.items()} == {
        "a": {"features": ["f/a.csv"], "labels": ["l/a.json"]},
        "c": {"features": ["f/c.csv"], "labels": ["l/c.json"]},
    }
    assert touched_ids(joined, "labels", "l/", ["l/z.json", "l/a.json"]) == {"z", "a"}


def test_a_join_needs_captures_and_join_on_on_both_sides() -> None:
    with pytest.raises(DatumSpecError, match="captures nothing"):
        DatumSpec(inputs=(DatumInput("a", "", "/*.csv", "$1"), DatumInput("b", "", "/(*).json", "$1")))
    with pytest.raises(DatumSpecError, match="needs join_on"):
        DatumSpec(inputs=(DatumInput("a", "", "/(*).csv", "$1"), DatumInput("b", "", "/(*).json")))
    with pytest.raises(DatumSpecError, match=r"refers to \$2"):
        DatumSpec(inputs=(DatumInput("a", "", "/(*).csv", "$2"), DatumInput("b", "", "/(*).json", "$1")))


def test_changed_paths_touch_only_their_own_datums() -> None:
    changed = ["records/d/2.csv", "records/new.csv", "elsewhere/x.csv"]
    assert touched_ids(spec("/*"), "data", "records/", changed) == {"d", "new.csv"}
    assert touched_ids(spec("/"), "data", "records/", changed) == {""}


def test_each_datum_writes_under_its_own_output_prefix() -> None:
    assert datum_output_prefix("scored/", "a.csv") == "scored/a.csv/"
    assert datum_output_prefix("scored", "day-1/a.csv") == "scored/day-1/a.csv/"
    assert datum_output_prefix("scored/", "") == "scored/"


def test_batches_hold_datums_per_task_and_grow_rather_than_exceed_the_map_limit() -> None:
    datums = [Datum(str(i), {"data": [str(i)]}) for i in range(25)]
    assert [len(b) for b in batches(datums, 10)] == [10, 10, 5]
    assert [len(b) for b in batches(datums, 1, max_batches=4)] == [7, 7, 7, 4]
    assert batches([], 10) == []
    with pytest.raises(DatumSpecError, match="at least 1"):
        batches(datums, 0)


def test_reprocess_spec_is_until_success_or_every_job() -> None:
    assert check_reprocess("every_job") == "every_job"
    assert check_reprocess("") == "until_success"
    with pytest.raises(DatumSpecError, match="reprocess_spec 'always'"):
        check_reprocess("always")


def test_the_config_fingerprint_changes_with_the_model_image_and_parameters_only() -> None:
    base = {"spec": spec("/*"), "output": "lakefs://p/main/s/", "image": "i:1", "command": ["python"]}
    one = config_fingerprint(cross_commits={"model": "m1"}, hyperparameters={}, **base)  # type: ignore[arg-type]
    assert one == config_fingerprint(cross_commits={"model": "m1"}, hyperparameters={}, **base)  # type: ignore[arg-type]
    assert one != config_fingerprint(cross_commits={"model": "m2"}, hyperparameters={}, **base)  # type: ignore[arg-type]
    assert one != config_fingerprint(cross_commits={"model": "m1"}, hyperparameters={"t": 1}, **base)  # type: ignore[arg-type]
    assert one != config_fingerprint(
        cross_commits={"model": "m1"},
        hyperparameters={},
        **{**base, "image": "i:2"},  # type: ignore[arg-type]
    )
