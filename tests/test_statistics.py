"""Seeds aggregate to mean, 95% CI and n; overlapping intervals share a rank; gaps to optimum."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.report import TaskMeta
from harness.report.ranking import aggregate, display_table, interval

META = TaskMeta(
    primary_metric="test_accuracy", higher_is_better=True, optimum={"test_accuracy": 0.95}
)


def cells(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {
            "task": "t",
            "model": model,
            "seed": seed,
            "status": "ok",
            "test_accuracy": v,
            "train_accuracy": v + 0.01,
        }
        for model, seq in values.items()
        for seed, v in enumerate(seq)
    ]
    return pd.DataFrame(rows)


def test_interval_is_the_t_interval():
    values = pd.Series([0.80, 0.82, 0.85, 0.81])
    mean, half, n = interval(values)
    expected = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / math.sqrt(4)
    assert (mean, n) == (pytest.approx(0.82), 4) and half == pytest.approx(expected)
    assert math.isnan(interval(pd.Series([0.5]))[1])


def test_overlapping_intervals_share_a_rank_and_separated_ones_do_not():
    board = aggregate(
        cells({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.92, 0.90], "c": [0.50, 0.52, 0.51]}),
        "t",
        META,
    )
    ranks = dict(zip(board["model"], board["rank"]))
    assert ranks == {"a": 1, "b": 1, "c": 3}
    separable = dict(zip(board["model"], board["separable"]))
    assert separable == {"a": False, "b": False, "c": True}
    shown = display_table(board, META)
    assert list(shown["rank"][:3]) == ["1=", "1=", "3"]
    assert "±" in shown.loc[0, "test_accuracy"]


def test_lower_is_better_ranks_and_gap_sign():
    meta = TaskMeta(
        primary_metric="test_accuracy", higher_is_better=False, optimum={"test_accuracy": 0.1}
    )
    board = aggregate(cells({"a": [0.3, 0.31], "b": [0.5, 0.52]}), "t", meta)
    assert list(board["model"]) == ["a", "b"]
    assert board.loc[0, "gap_to_best_test_accuracy"] == pytest.approx(0.205)


def test_leaderboard_recomputed_from_per_seed_rows():
    frame = cells({"a": [0.90, 0.93, 0.91], "b": [0.70, 0.71, 0.75]})
    board = aggregate(frame, "t", META).set_index("model")
    for model, group in frame.groupby("model"):
        mean, half, n = interval(group["test_accuracy"])
        assert board.loc[model, "test_accuracy"] == pytest.approx(mean)
        assert board.loc[model, "test_accuracy_ci95"] == pytest.approx(half)
        assert board.loc[model, "test_accuracy_n"] == n == 3
        assert board.loc[model, "gap_to_best_test_accuracy"] == pytest.approx(0.95 - mean)
        assert board.loc[model, "train_accuracy"] == pytest.approx(mean + 0.01)


def test_failed_cells_are_left_out_of_the_statistics():
    frame = cells({"a": [0.9, 0.8]})
    frame.loc[1, "status"] = "failed"
    board = aggregate(frame, "t", META)
    assert (
        board.loc[0, "test_accuracy"] == pytest.approx(0.9) and board.loc[0, "test_accuracy_n"] == 1
    )
