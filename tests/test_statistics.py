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


def test_probability_of_beating_counts_seed_pairs_and_bootstraps_an_interval():
    from harness.report.ranking import probability_of_beating

    p, low, high = probability_of_beating([0.9, 0.8, 0.7], [0.75, 0.6], higher=True)
    # pairs won: 0.9 beats both, 0.8 both, 0.7 only 0.6 -> 5 of 6
    assert p == pytest.approx(5 / 6) and 0.0 <= low <= p <= high <= 1.0 and low < high
    assert probability_of_beating([0.1, 0.2], [0.3, 0.4], higher=False)[0] == 1.0
    assert probability_of_beating([0.5, 0.5], [0.5, 0.5], higher=True)[:1] == (0.5,)
    assert all(math.isnan(v) for v in probability_of_beating([0.9], [0.1, 0.2], higher=True))
    again = probability_of_beating([0.9, 0.8, 0.7], [0.75, 0.6], higher=True)
    assert again == (p, low, high)  # seeded: the same cells give the same table


def test_neighbours_get_the_probability_of_beating_the_next_one_beside_the_ranks():
    board = aggregate(
        cells({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.92, 0.90], "c": [0.50, 0.52, 0.51]}),
        "t",
        META,
    )
    columns = list(board.columns)
    at = columns.index("separable")
    assert columns[at + 1 : at + 4] == ["p_beats_next", "p_beats_next_low", "p_beats_next_high"]
    assert board.loc[0, "p_beats_next"] == pytest.approx(6 / 9)  # a over b
    assert board.loc[1, "p_beats_next"] == 1.0  # b over c, every pair
    assert board.loc[1, "p_beats_next_low"] == 1.0
    assert math.isnan(board.loc[2, "p_beats_next"])  # the last has no next
    shown = display_table(board, META)
    assert shown.loc[1, "P(beats next)"] == "1.00 [1.00, 1.00]"


def test_a_model_far_from_the_others_median_size_is_flagged():
    frame = cells({"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7], "d": [0.6, 0.6]})
    frame["params"] = frame["model"].map({"a": 1000, "b": 1050, "c": 960, "d": 2000})
    board = aggregate(frame, "t", META).set_index("model")
    assert board.loc["a", "params_vs_median"] == pytest.approx(1000 / 1050 - 1)
    assert board.loc["d", "params_vs_median"] == pytest.approx(2000 / 1000 - 1)
    assert dict(board["size_flagged"]) == {"a": False, "b": False, "c": False, "d": True}
    shown = display_table(board.reset_index(), META).set_index("model")
    assert shown.loc["d", "params"].endswith("!") and not shown.loc["a", "params"].endswith("!")
    assert shown.loc["d", "params_vs_median"] == "+100%"
