"""Attempt branches: the identity their names carry and which of them are leftovers (operators/attempts.py)."""

from __future__ import annotations

import pytest

from airflow_mlrepo.operators.attempts import (
    AttemptBranch,
    KnownTaskInstance,
    TaskInstanceId,
    instances_from_task_states,
    judge,
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
    "name", ["mlrepo-notes", "mlrepo-d-0123456789ab-b0-try1", "main", "mlrepo-train-0123456789ab-try1"]
)
def test_other_names_are_never_deleted(name: str) -> None:
    assert AttemptBranch.parse(name) is None
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
