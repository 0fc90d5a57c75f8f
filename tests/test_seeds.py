"""Seeds trained together (torch.func): each seed's figures equal training it alone; models
that cannot be batched fall back; the kit checks every model that claims it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import pytest
import torch

from harness.grid.cells import Cell, execute_cell, execute_cells
from harness.grid.runner import group_seeds
from harness.plugin_api.model import Model
from harness.plugin_api.task import Recipe, TaskData, TaskShape
from harness.tasks.sine import Sine
from harness.testing import check_trains_across_seeds

COMPARED = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "task_rollout_mse"]


def cells(task: str, model: str, seeds=(0, 1, 2), epochs: int = 2, **options) -> list[Cell]:
    from harness.plugin_api.manager import load_plugins

    recipe = load_plugins().tasks[task].recipe.with_overrides(epochs=epochs)
    return [Cell(task, model, seed, recipe, "cpu", dict(options)) for seed in seeds]


@pytest.mark.parametrize(
    ("task", "model", "options"),
    [
        ("hello", "rnn", {}),
        ("sine", "gru", {"train_curves": 8, "test_curves": 8}),
        ("consecutive", "embedding-rnn", {"length": 200, "test_length": 200}),
    ],
)
def test_each_seed_trained_together_equals_training_it_alone(registry, task, model, options):
    group = cells(task, model, **options)
    together = execute_cells(group, registry)
    apart = [execute_cell(cell, registry) for cell in group]
    for joint, alone in zip(together, apart):
        assert joint["cell_id"] == alone["cell_id"] and joint["seeds_together"] == 3
        assert joint["status"] == alone["status"] == "ok"
        for column in COMPARED:
            if alone.get(column) is not None:
                assert joint[column] == pytest.approx(alone[column], rel=1e-4, abs=1e-6), column
        for mine, theirs in zip(joint["curve"], alone["curve"]):
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    assert len({r["train_loss"] for r in together}) == 3  # own init and data per seed


@dataclass
class SineWithABadSeed(Sine):
    """Sine whose seed 1 has targets so large that the squared error overflows."""

    name = "sine-bad-seed"

    def make_data(self, seed: int) -> TaskData:
        data = super().make_data(seed)
        if seed == 1:
            data.train_targets = data.train_targets * 1e30
        return data


def test_a_seed_that_diverges_does_not_stop_the_others():
    from harness.models.rnn import build
    from harness.training.seeds import train_seeds_together
    from harness.training.train import Diverged

    task = SineWithABadSeed(train_curves=8, test_curves=8)
    model = Model("rnn", "nn.RNN", build, trains_across_seeds=True)
    recipe = task.recipe.with_overrides(epochs=2)
    outcomes = train_seeds_together(task, model, [0, 1, 2], torch.device("cpu"), recipe)
    assert isinstance(outcomes[1], Diverged) and "epoch 1" in outcomes[1].args[0]
    for s in (0, 2):
        assert len(outcomes[s].curve) == 2 and math.isfinite(outcomes[s].metrics["test_loss"])


def test_only_models_that_claim_it_are_grouped(registry):
    pending = cells("hello", "rnn") + cells("hello", "lstm") + cells("hello", "gru", seeds=(4,))
    units = group_seeds(pending, registry)
    assert [[c.cell_id for c in unit] for unit in units] == [
        [f"hello__rnn__seed{s}" for s in (0, 1, 2)],
        ["hello__lstm__seed0"],
        ["hello__lstm__seed1"],
        ["hello__lstm__seed2"],
        ["hello__gru__seed4"],
    ]


class ReadsItsData(torch.nn.Module):
    """Claims too much: ``.item()`` in forward cannot be traced by vmap."""

    def __init__(self, shape: TaskShape) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(shape.input_size, 4, batch_first=True)
        self.head = torch.nn.Linear(4, shape.output_size)

    def forward(self, x, state=None):
        x = torch.nn.functional.one_hot(x, 4).float() if x.dim() == 2 else x
        hidden, state = self.rnn(x, state)
        return self.head(hidden) * (1.0 if float(hidden.abs().max().item()) >= 0 else 0.0), state


def test_a_model_that_cannot_be_batched_falls_back_to_one_seed_at_a_time(registry):
    claimed = Model(
        "reads",
        "claims too much",
        lambda shape, h, n: ReadsItsData(shape),
        trains_across_seeds=True,
    )
    local = dataclasses.replace(registry, models={**registry.models, "reads": claimed})
    records = execute_cells(cells("hello", "reads"), local)
    assert [r["status"] for r in records] == ["ok"] * 3
    assert all("seeds_together" not in r for r in records)


def test_the_kit_checks_each_claiming_model_and_catches_a_false_claim(registry):
    for name in ("rnn", "gru", "embedding-rnn", "scratch-rnn", "rnncell"):
        assert registry.models[name].trains_across_seeds
        check_trains_across_seeds(registry.models[name])
    assert not registry.models["lstm"].trains_across_seeds

    def build(shape: TaskShape, hidden: int, layers: int):
        from harness.models.layers import TorchRecurrent

        net = TorchRecurrent(torch.nn.RNN, shape, hidden, layers)
        net.head = torch.nn.Sequential(torch.nn.Dropout(0.5), net.head)  # random per call
        return net

    with pytest.raises(AssertionError, match="trains_across_seeds"):
        check_trains_across_seeds(Model("dropout-rnn", "dropout", build, trains_across_seeds=True))


def test_recipes_that_carry_state_are_not_grouped(registry):
    carried = Recipe(epochs=1, batch_size=2, lr=0.01, carry_state=True)
    pending = [Cell("hello", "rnn", s, carried, "cpu") for s in (0, 1)]
    assert len(group_seeds(pending, registry)) == 2


@pytest.mark.parametrize("select", ["best", "last"])
def test_selection_and_patience_per_seed_equal_training_apart(registry, select):
    """Each seed keeps its own best epoch, early stop and restored weights; stopped seeds
    are frozen while the others train on; trials without a test evaluation stay so."""
    recipe = registry.tasks["sine"].recipe.with_overrides(epochs=12, lr=0.05)
    group = [
        Cell(
            "sine",
            "gru",
            seed,
            recipe,
            "cpu",
            {"train_curves": 8, "test_curves": 8},
            select=select,
            patience=2,
        )
        for seed in (0, 1, 2)
    ]
    together = execute_cells(group, registry)
    apart = [execute_cell(cell, registry) for cell in group]
    for joint, alone in zip(together, apart):
        assert joint["seeds_together"] == 3
        for column in ("best_epoch", "selected_epoch", "epochs_run", "stopped_early"):
            assert joint[column] == alone[column], column
        for column in ("val_loss", "test_loss", "train_loss"):
            assert joint[column] == pytest.approx(alone[column], rel=1e-4, abs=1e-6), column
    untested = [dataclasses.replace(cell, evaluate_test=False) for cell in group]
    assert all("test_loss" not in r for r in execute_cells(untested, registry))


def test_run_seeds_together_from_the_command_line(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "run"
    args = ["run", "-t", "hello", "-m", "rnn", "-m", "lstm", "--seeds", "2", "--epochs", "2"]
    result = run_cli(*args, "--no-timing", "--seeds-together", "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert records["hello__rnn__seed0"]["seeds_together"] == 2
    assert "seeds_together" not in records["hello__lstm__seed0"]  # lstm does not claim it
    apart = tmp_path / "apart"
    result = run_cli(*args, "--no-timing", "--out", str(apart))
    assert result.returncode == 0, result.stderr
    alone = json.loads((apart / "cells" / "hello__rnn__seed1.json").read_text())
    assert "seeds_together" not in alone
    joint = records["hello__rnn__seed1"]
    assert joint["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-4)
