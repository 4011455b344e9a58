from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError, MlRepoError
from airflow_mlrepo.locations import LakeFSLocation, is_commit_id, validate_branch, validate_repository

repositories = st.from_regex(r"[a-z0-9][a-z0-9-]{2,62}", fullmatch=True)
refs = st.one_of(
    st.from_regex(r"\w[-\w]{0,30}", fullmatch=True),  # branches
    st.from_regex(r"[0-9a-f]{64}", fullmatch=True),  # commit ids
    st.from_regex(r"\w[-\w]{0,10}(~[0-9]{1,3}|\^[12]|@|\$)?", fullmatch=True),  # ref expressions
)
paths = st.lists(
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=12),
    max_size=5,
).map("/".join)


@given(repositories, refs, paths)
def test_uri_round_trips(repository: str, ref: str, path: str) -> None:
    location = LakeFSLocation(repository, ref, path)
    assert LakeFSLocation.parse(location.uri) == location
    assert str(location) == f"lakefs://{repository}/{ref}/{path}"


@given(repositories, refs, paths)
def test_path_may_contain_anything_but_nul(repository: str, ref: str, path: str) -> None:
    parsed = LakeFSLocation.parse(f"lakefs://{repository}/{ref}/{path}")
    assert (parsed.repository, parsed.ref, parsed.path) == (repository, ref, path)


def test_examples() -> None:
    loc = LakeFSLocation.parse("lakefs://iris-train/main~2/data/iris.csv")
    assert (loc.repository, loc.ref, loc.path) == ("iris-train", "main~2", "data/iris.csv")
    assert LakeFSLocation.parse("lakefs://iris-train/main").path == ""
    assert LakeFSLocation.parse("lakefs://iris-train/main/").path == ""
    assert LakeFSLocation.parse("lakefs://iris-train/main/dir/").path == "dir/"
    assert loc.with_ref("a" * 64).uri == f"lakefs://iris-train/{'a' * 64}/data/iris.csv"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("s3://bucket/main/x", "expected 'lakefs://"),
        ("lakefs://", "repository"),
        ("lakefs://repo", "names no ref"),
        ("lakefs://repo/", "names no ref"),
        ("lakefs://Repo_X/main/p", "repository name 'Repo_X'"),
        ("lakefs://ab/main/p", "repository name 'ab'"),
        ("lakefs://repo/ma in/p", "ref 'ma in'"),
        ("lakefs://repo/main//abs", "path '/abs'"),
        ("lakefs://repo/main/a\x00b", "NUL"),
    ],
)
def test_malformed_locations_name_the_bad_part(uri: str, fragment: str) -> None:
    with pytest.raises(InvalidLakeFSLocationError) as err:
        LakeFSLocation.parse(uri)
    assert fragment in str(err.value)
    assert isinstance(err.value, MlRepoError)
    assert isinstance(err.value, ValueError)


@given(st.text(max_size=40))
def test_parse_never_raises_anything_but_our_error(text: str) -> None:
    with contextlib.suppress(InvalidLakeFSLocationError):
        LakeFSLocation.parse(text)
    with contextlib.suppress(InvalidLakeFSLocationError):
        LakeFSLocation.parse("lakefs://" + text)


def test_name_validators() -> None:
    assert validate_repository("my-repo") == "my-repo"
    assert validate_branch("feature-1_x") == "feature-1_x"
    with pytest.raises(InvalidLakeFSLocationError):
        validate_branch("-leading-dash")
    with pytest.raises(InvalidLakeFSLocationError):
        validate_repository("-leading")
    assert is_commit_id("0" * 64)
    assert not is_commit_id("main")
