"""The timing phase: each pair's steps timed on their own, cached in the run folder, merged into
the tables with their spread; and cells handed out longest first by estimated cost."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.grid.cells import Cell
from harness.grid.runner import GridPlan, estimate_cost, run_grid, timing_specs
from harness.report.tables import cells_frame
from harness.storage.run_folder import RunFolder
from harness.training.timing import TimingSpec, summarize
from harness.training.timing_phase import run_timing, time_pair


def spec_for(registry, task: str, model: str, **overrides) -> TimingSpec:
    recipe = registry.tasks[task].recipe.with_overrides(**overrides)
    return TimingSpec(task, model, recipe, "cpu", threads=1)


def test_a_pair_is_timed_with_median_quartiles_rounds_and_threads(registry):
    spec = spec_for(registry, "hello", "rnn")
    record = time_pair(spec, registry.tasks["hello"], registry.models["rnn"], torch.device("cpu"))
    assert "error" not in record
    for phase in ("train", "infer"):
        q1, median, q3 = (record[f"{phase}_ms_per_batch{s}"] for s in ("_q1", "", "_q3"))
        assert 0 < q1 <= median <= q3
        rate = record[f"{phase}_throughput"]
        assert rate == pytest.approx(5 / (median / 1000))  # hello: batch 1 x 5 tokens
        assert record[f"{phase}_throughput_q1"] <= rate <= record[f"{phase}_throughput_q3"]
        assert record[f"timing_rounds_{phase}"] >= 10
    assert record["timing_threads"] == 1 and record["unit"] == "tokens"
    assert record["batches_per_epoch"] == 1 and record["params"] > 0


def test_summarize_turns_slow_quartiles_into_low_rates():
    figures = summarize([0.001, 0.002, 0.003, 0.004, 0.005], items=10, phase="train")
    assert figures["train_ms_per_batch"] == pytest.approx(3.0)
    assert figures["train_ms_per_batch_q1"] == pytest.approx(2.0)
    assert figures["train_throughput_q1"] == pytest.approx(10 / 0.004)
    assert figures["train_throughput_q3"] == pytest.approx(10 / 0.002)


def test_a_pair_that_cannot_be_built_records_its_error(registry):
    spec = spec_for(registry, "hello", "embedding-rnn")
    sine = registry.tasks["sine"]  # values in, but embedding-rnn takes tokens
    record = time_pair(spec, sine, registry.models["embedding-rnn"], torch.device("cpu"))
    assert record["error"] and "train_throughput" not in record


def test_timings_are_cached_in_the_run_folder_by_config(registry, tmp_path: Path):
    specs = [spec_for(registry, "hello", "rnn"), spec_for(registry, "hello", "gru")]
    first = run_timing(specs, RunFolder(tmp_path), registry).records
    assert sorted(p.name for p in (tmp_path / "timing").iterdir()) == [
        "hello__gru.json",
        "hello__rnn.json",
    ]
    again = run_timing(specs, RunFolder(tmp_path), registry)
    assert again.records == first and again.timed == 0  # read back, not timed again
    changed = run_timing(
        [spec_for(registry, "hello", "rnn", hidden_size=8)], RunFolder(tmp_path), registry
    ).records
    assert changed[0]["hidden_size"] == 8 and changed[0]["config_hash"] != first[0]["config_hash"]
    assert len(RunFolder(tmp_path).read_timings()) == 2


def test_every_seed_of_a_pair_gets_its_timing_but_only_a_matching_one(registry, tmp_path):
    timing = run_timing([spec_for(registry, "hello", "rnn")], RunFolder(tmp_path), registry)
    timing = timing.records[0]
    base = {"task": "hello", "model": "rnn", "device": "cpu", "batch_size": 1, "num_layers": 1}
    records = [
        {**base, "cell_id": "a", "seed": 0, "status": "ok", "hidden_size": 16},
        {**base, "cell_id": "b", "seed": 1, "status": "ok", "hidden_size": 16},
        {**base, "cell_id": "c", "seed": 0, "status": "ok", "hidden_size": 32},  # other recipe
        {**base, "cell_id": "d", "seed": 2, "status": "failed", "hidden_size": 16},
    ]
    frame = cells_frame(records, [timing]).set_index("cell_id")
    assert frame.loc[["a", "b"], "train_throughput"].tolist() == [timing["train_throughput"]] * 2
    assert frame.loc[["c", "d"], "train_throughput"].isna().all()


def cell(task: str, model: str, epochs: int, seed: int = 0) -> Cell:
    from harness.plugin_api.task import Recipe

    return Cell(task, model, seed, Recipe(epochs=epochs, batch_size=4, lr=0.01), "cpu")


def test_cost_is_an_earlier_record_else_the_timed_step_else_the_epochs():
    a, b, c = cell("t", "a", 10), cell("t", "b", 10), cell("t", "c", 40)
    earlier = {a.config_hash(): 7.0}
    timings = {"t__b": {"train_ms_per_batch": 2.0, "batches_per_epoch": 100}}
    assert estimate_cost(a, earlier, timings) == 7.0
    assert estimate_cost(b, earlier, timings) == pytest.approx(1.25 * 10 * 100 * 2.0 / 1000)
    assert estimate_cost(c, earlier, timings) > estimate_cost(cell("t", "c", 10), {}, {})


def test_cells_are_handed_out_longest_first_and_come_back_in_plan_order(registry, tmp_path):
    plan = GridPlan(cells=[cell("hello", "rnn", e, seed=e) for e in (1, 3, 2)])
    started = []
    records = run_grid(
        plan,
        RunFolder(tmp_path),
        registry=registry,
        on_done=lambda record: started.append(record["epochs"]),
        cost=lambda c: c.recipe.epochs,
    )
    assert started == [3, 2, 1]
    assert [r["epochs"] for r in records] == [1, 3, 2]


def test_one_timing_per_pair_whatever_the_seeds():
    plan = GridPlan(cells=[cell("t", m, 5, seed=s) for m in ("a", "b") for s in range(3)])
    assert [s.pair_id for s in timing_specs(plan, threads=1)] == ["t__a", "t__b"]


def test_a_run_reports_timed_speed_with_spread_and_no_timing_leaves_it_out(cli, tmp_path):
    grid = ["run", "-t", "hello", "-m", "rnn", "-m", "gru", "--epochs", "2", "--workers", "1"]
    result = cli(*grid, "--threads", "1", "--out", str(tmp_path / "timed"))
    assert result.returncode == 0, result.stderr
    cells = pd.read_csv(tmp_path / "timed" / "cells.csv")
    assert cells["train_throughput"].notna().all() and (cells["timing_threads"] == 1).all()
    board = (tmp_path / "timed" / "leaderboard.md").read_text()
    assert "train_throughput" in board and "train_wall_seconds" in board
    row = next(line for line in board.splitlines() if line.startswith("| 1"))
    assert "[" in row and "]" in row  # median [q1, q3]
    info = json.loads((tmp_path / "timed" / "run.json").read_text())
    assert info["timing"]["pairs"] == 2 and info["timing"]["threads"] == 1

    result = cli(*grid, "--no-timing", "--out", str(tmp_path / "untimed"))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "untimed" / "timing").exists()
    assert pd.read_csv(tmp_path / "untimed" / "cells.csv")["train_throughput"].isna().all()
