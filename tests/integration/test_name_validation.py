"""Generated branch and tag names through the hook against a real lakeFS: our typed error exactly when
lakeFS's own validation refuses the name.

For each name the hook is asked first. If it refuses with :class:`InvalidLakeFSLocationError`
(before any request), lakeFS is asked directly through its SDK, bypassing our checks, and must
answer 400. If the hook lets it through, lakeFS must have accepted it (the branch or tag exists); a
400 from lakeFS then (:class:`LakeFSBadInputError`) means our rules are looser than lakeFS's.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from lakefs_sdk import BranchCreation, TagCreation
from lakefs_sdk.exceptions import ApiException

from airflow_mlrepo.exceptions import InvalidLakeFSLocationError
from airflow_mlrepo.hooks.lakefs import LakeFSHook
from tests.unit.test_fuzz_inputs import names

GENERATED = 300
real_lakefs = settings(
    max_examples=GENERATED,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def name_repo(lakefs_server: object) -> object:
    hook = LakeFSHook()
    name = f"t-names-{uuid.uuid4().hex[:8]}"
    hook.create_repository(name, f"local://{name}")
    yield name
    hook.delete_repository(name, missing_ok=True)


def _lakefs_refuses(call: object) -> tuple[bool, str]:
    """Whether lakeFS refused the name as invalid: HTTP 400, or for an empty name its 'required value' 500."""
    try:
        call()  # type: ignore[operator]
    except ApiException as exc:
        body = str(exc.body or "")
        refused = exc.status == 400 or (exc.status == 500 and "required value" in body.lower())
        return refused, f"HTTP {exc.status}: {body[:200]}"
    return False, "HTTP 201"


OUTCOMES: Counter[str] = Counter()


@real_lakefs
@given(name=names.filter(lambda name: name != "main"))
def test_branch_names_are_refused_exactly_when_lakefs_refuses_them(name_repo: str, name: str) -> None:
    hook = LakeFSHook()
    try:
        hook.create_branch(name_repo, name, "main")
    except InvalidLakeFSLocationError:
        refused, answer = _lakefs_refuses(
            lambda: hook.client.branches_api.create_branch(name_repo, BranchCreation(name=name, source="main"))
        )
        assert refused, f"lakeFS accepted branch name {name!r} that the hook refused ({answer})"
        OUTCOMES["branch refused by both"] += 1
        return
    assert hook.branch_exists(name_repo, name)
    OUTCOMES["branch accepted by both"] += 1


@real_lakefs
@given(name=names)
def test_tag_names_are_refused_exactly_when_lakefs_refuses_them(name_repo: str, name: str) -> None:
    hook = LakeFSHook()
    try:
        hook.create_tag(name_repo, name, "main")
    except InvalidLakeFSLocationError:
        refused, answer = _lakefs_refuses(
            lambda: hook.client.tags_api.create_tag(name_repo, TagCreation(id=name, ref="main"))
        )
        assert refused, f"lakeFS accepted tag name {name!r} that the hook refused ({answer})"
        OUTCOMES["tag refused by both"] += 1
        return
    OUTCOMES["tag accepted by both"] += 1


def test_both_kinds_of_outcome_were_generated() -> None:
    print(dict(OUTCOMES))
    for kind in ("branch", "tag"):
        assert OUTCOMES[f"{kind} refused by both"] >= 30, OUTCOMES
        assert OUTCOMES[f"{kind} accepted by both"] >= 30, OUTCOMES
