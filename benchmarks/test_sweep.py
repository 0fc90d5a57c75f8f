"""Scaling sweep: training-step time of the recurrent models vs sequence length and hidden size.

Synthetic value inputs (one feature in, one value out), so every model that serves value
inputs takes part, third-party ones included. Rounds are calibrated per point to a small time
budget so the whole sweep stays within a few minutes on two cores. Select it with ``-m sweep``,
leave it out with ``-m "not sweep"``.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.support import SWEEP_SHAPE, measure
from harness.plugin_api.task import Recipe
from harness.training.timing import calibrated_rounds
from harness.training.train import make_training_step

BATCH = 32
LENGTHS = (10, 30, 100, 300, 1000)
HIDDEN_SIZES = (16, 64, 256, 512)
FIXED_HIDDEN = 64  # for the length sweep
FIXED_LENGTH = 100  # for the hidden-size sweep
RECIPE = Recipe(epochs=1, batch_size=BATCH, lr=1e-3, optimizer="adam", clip=1.0)
BUDGET_S = 2.0  # timed seconds per point, roughly
MIN_ROUNDS, MAX_ROUNDS = 5, 20

pytestmark = pytest.mark.sweep


def _sweep(benchmark, registry, model_name, device, *, sweep, length, hidden):
    model = registry.models[model_name]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, length, 1, generator=generator).to(device)
    y = torch.randn(BATCH, length, 1, generator=generator).to(device)
    torch.manual_seed(0)
    net = model.make(SWEEP_SHAPE, hidden, 1).to(device).train()
    step = make_training_step(net, RECIPE.with_overrides(hidden_size=hidden), "values")
    benchmark.group = (
        f"sweep length (hidden {hidden})"
        if sweep == "length"
        else f"sweep hidden (length {length})"
    )

    def run():
        return step(x, y, None)

    rounds, warmup = 1, 0
    if not benchmark.disabled:
        rounds, warmup = calibrated_rounds(run, device, BUDGET_S, MIN_ROUNDS, MAX_ROUNDS), 1
    info = {
        "kind": "sweep",
        "sweep": sweep,
        "model": model_name,
        "phase": "train",
        "batch_size": BATCH,
        "timesteps": length,
        "hidden_size": hidden,
        "optimizer": RECIPE.optimizer,
    }
    measure(
        benchmark,
        run,
        device,
        rounds=rounds,
        warmup_rounds=warmup,
        items=BATCH * length,
        unit="steps",
        info=info,
    )


@pytest.mark.parametrize("length", LENGTHS)
def test_sweep_length(benchmark, registry, sweep_model, length, device):
    _sweep(
        benchmark, registry, sweep_model, device, sweep="length", length=length, hidden=FIXED_HIDDEN
    )


@pytest.mark.parametrize("hidden", HIDDEN_SIZES)
def test_sweep_hidden(benchmark, registry, sweep_model, hidden, device):
    _sweep(
        benchmark, registry, sweep_model, device, sweep="hidden", length=FIXED_LENGTH, hidden=hidden
    )
