"""Attempt branches: the identity their names carry and which of them are leftovers (operators/attempts.py)."""

from __future__ import annotations

import pytest

from airflow_mlrepo.operators.attempts import (
    AttemptBranch,
    KnownDatumRun,
    KnownTaskInstance,
    TaskInstanceId,
    datum_run_key,
    datum_run_key_of,
    datum_run_prefix,
    instances_from_task_states,
    judge,
    old_instance_key_of,
)

TRAIN = TaskInstanceId("iris_training", "manual__2026-12-01T10:00:00+00:00", "train")
PREDICT_3 = TaskInstanceId("iris_training", "scheduled__2026-12-01T00:00:00+00:00", "predict", 3)
OTHER_DAG = TaskInstanceId("other_dag", "manual__1", "train")


def test_a_branch_name_carries_the_dag_the_instance_and_the_try() -> None:
    name = PREDICT_3.branch(2)
    parsed = AttemptBranch.parse(name)
    assert parsed is not None
    assert (parsed.task, parsed.try_number, parsed.instance_key) == ("predict", 2, PREDICT_3.key)
    assert name.startswith(PREDICT_3.branch_prefix)
    assert AttemptBranch.parse(OTHER_DAG.branch(1)).dag_key != parsed.dag_key  # type: ignore[union-attr]
    assert TaskInstanceId("d", "r", "t", 0).key != TaskInstanceId("d", "r", "t", 1).key


@pytest.mark.parametrize(
    "name", ["mlrepo-notes", "mlrepo-d-notes", "main", "mlrepo-train-0123-try1", "mlrepo-d-0123456789ab-x-try1"]
)
def test_other_names_are_never_deleted(name: str) -> None:
    assert AttemptBranch.parse(name) is None
    assert datum_run_key_of(name) is None
    assert old_instance_key_of(name) is None
    [verdict] = judge([name], [], [], every_dag_known=True)
    assert not verdict.delete


@pytest.mark.parametrize("state", ["success", "failed", "skipped", "upstream_failed", "removed"])
def test_a_finished_task_instance_leaves_a_leftover(state: str) -> None:
    [verdict] = judge([TRAIN.branch(1)], [TRAIN.dag_id], [KnownTaskInstance(TRAIN, state)], every_dag_known=False)
    assert verdict.delete
    assert state in verdict.reason
    assert verdict.owner == TRAIN


@pytest.mark.parametrize(
    "state", ["running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting", None]
)
def test_a_task_instance_that_may_still_write_keeps_its_branch(state: str | None) -> None:
    instances = [KnownTaskInstance(TRAIN, state), KnownTaskInstance(PREDICT_3, "failed")]
    verdicts = judge([TRAIN.branch(1), TRAIN.branch(2)], [TRAIN.dag_id], instances, every_dag_known=True)
    assert [v.delete for v in verdicts] == [False, False]


def test_a_branch_whose_run_or_dag_is_gone_is_a_leftover() -> None:
    gone = TaskInstanceId(TRAIN.dag_id, "manual__deleted", "train")
    verdicts = judge(
        [gone.branch(1), OTHER_DAG.branch(1)],
        [TRAIN.dag_id],
        [KnownTaskInstance(TRAIN, "running")],
        every_dag_known=True,
    )
    assert [v.delete for v in verdicts] == [True, True]
    assert "run no longer exists" in verdicts[0].reason
    assert "DAG no longer exists" in verdicts[1].reason


def test_a_task_judges_only_its_own_dag() -> None:
    """Without every DAG known (a task asks about its own DAG), another DAG's branch gets no verdict."""
    assert judge([OTHER_DAG.branch(1)], [TRAIN.dag_id], [], every_dag_known=False) == []


def test_task_states_of_the_task_sdk_become_instances() -> None:
    states = {TRAIN.run_id: {"train": "failed"}, PREDICT_3.run_id: {"predict_3": "running", "predict": "success"}}
    instances = instances_from_task_states("iris_training", states, ["train", "predict"])
    assert KnownTaskInstance(TRAIN, "failed") in instances
    assert KnownTaskInstance(PREDICT_3, "running") in instances
    verdicts = judge([TRAIN.branch(1), PREDICT_3.branch(1)], ["iris_training"], instances, every_dag_known=False)
    assert [v.delete for v in verdicts] == [True, False]


def _datum_run(state: str | None, run_id: str = "manual__1") -> KnownDatumRun:
    return KnownDatumRun(datum_run_key("iris_batch", run_id, "score"), "iris_batch", run_id, "score", state)


def _datum_branches(run: KnownDatumRun) -> list[str]:
    prefix = datum_run_prefix(run.run_key)
    return [f"{prefix}b0-try1", f"{prefix}b12-try3", f"{prefix}merge-try1"]


@pytest.mark.parametrize("state", ["success", "failed", "upstream_failed"])
def test_the_branches_of_a_finished_datum_run_are_leftovers(state: str) -> None:
    run = _datum_run(state)
    names = _datum_branches(run)
    assert {datum_run_key_of(name) for name in names} == {run.run_key}
    for every_dag_known in (True, False):
        verdicts = judge(names, ["iris_batch"], [], every_dag_known=every_dag_known, datum_runs=[run])
        assert [v.delete for v in verdicts] == [True, True, True]
        assert f"iris_batch/manual__1 (pipeline score) is {state}" in verdicts[0].reason


@pytest.mark.parametrize("state", [None, "running", "queued", "up_for_retry", "deferred"])
def test_the_branches_of_a_datum_run_that_may_still_write_are_kept(state: str | None) -> None:
    run = _datum_run(state)
    verdicts = judge(_datum_branches(run), ["iris_batch"], [], every_dag_known=True, datum_runs=[run])
    assert [v.delete for v in verdicts] == [False, False, False]
    assert "may still write" in verdicts[0].reason


def test_a_datum_branch_of_an_unknown_run_is_a_leftover_only_when_every_run_is_known() -> None:
    """The metadata database knows every plan: no plan with the key means its run was deleted; a task
    knows only its own pipeline's runs, so another run's branch gets no verdict."""
    names = _datum_branches(_datum_run("running", run_id="manual__deleted"))
    others = [_datum_run("running")]
    deleted = judge(names, ["iris_batch"], [], every_dag_known=True, datum_runs=others)
    assert [v.delete for v in deleted] == [True, True, True]
    assert "its run was deleted" in deleted[0].reason
    assert judge(names, ["iris_batch"], [], every_dag_known=False, datum_runs=others) == []


def _old_format(ti: TaskInstanceId, try_number: int) -> str:
    """The attempt branch name before the DAG key was part of it."""
    return f"mlrepo-{ti.task_id}-{ti.key}-try{try_number}"


def test_old_format_names_are_judged_by_their_instance_key_only_with_every_instance_known() -> None:
    gone = TaskInstanceId(TRAIN.dag_id, "manual__deleted", "train")
    names = [_old_format(TRAIN, 1), _old_format(PREDICT_3, 2), _old_format(gone, 1)]
    assert [old_instance_key_of(name) for name in names] == [TRAIN.key, PREDICT_3.key, gone.key]
    assert old_instance_key_of(TRAIN.branch(1)) is None  # today's names are not old-format ones
    instances = [KnownTaskInstance(TRAIN, "failed"), KnownTaskInstance(PREDICT_3, "running")]
    verdicts = judge(names, [TRAIN.dag_id], instances, every_dag_known=True)
    assert [v.delete for v in verdicts] == [True, False, True]
    assert "is failed" in verdicts[0].reason
    assert "is running" in verdicts[1].reason
    assert "old-format name" in verdicts[2].reason
    assert judge(names, [TRAIN.dag_id], instances, every_dag_known=False) == []
