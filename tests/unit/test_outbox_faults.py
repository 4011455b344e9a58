"""The deliverer killed at random points in 50 trials against a real HTTP endpoint on loopback."""

from __future__ import annotations

from pathlib import Path

from tests.outbox_faults import run_trials

TRIALS = 50


def test_a_deliverer_killed_at_random_points_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    figures = run_trials(tmp_path, trials=TRIALS)
    print(figures)
    assert figures.trials == TRIALS
    assert figures.kills >= TRIALS
    assert figures.failures == []
    assert (figures.lost, figures.out_of_order, figures.left_over_entries) == (0, 0, 0)
    assert figures.received == figures.events + figures.duplicates
