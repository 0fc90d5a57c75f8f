"""Seeds trained together against one after another, per training step, side by side.

For every installed task x model pair whose model claims ``trains_across_seeds``: ``SEEDS``
networks (seeds 0..SEEDS-1) each take one training step on the task's first batch, either one
after another (one ``make_training_step`` per seed, what ``--seeds-apart`` runs) or in one
batched ``torch.func`` step (:class:`harness.training.seeds.SeedStack`, what ``--seeds-together``
runs). Both process ``SEEDS`` x batch x timesteps items per call, so their throughputs compare
directly; ``harness bench-plot`` shows them per group. Whether together pays depends on the
device and the pair (see the README); tests here assert that both give the same losses, never
speed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchmarks.support import measure

SEEDS = 5

pytestmark = pytest.mark.seeds


def _seed_nets(model: Any, task: Any, recipe: Any, device: Any) -> list[torch.nn.Module]:
    nets = []
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        nets.append(model.make(task.shape, recipe.hidden_size, recipe.num_layers).to(device))
    return nets


@pytest.mark.parametrize("mode", ["apart", "together"])
def test_seeds_step(
    benchmark, registry, task_name, model_name, task_data, device, rounds, mode
) -> None:
    from harness.training.seeds import SeedStack
    from harness.training.train import make_training_step

    task, model = registry.tasks[task_name], registry.models[model_name]
    if not model.trains_across_seeds:
        pytest.skip(f"{model_name} does not claim trains_across_seeds")
    recipe = task.recipe
    data = task_data(task)
    x = data.train_inputs[: recipe.batch_size].to(device)
    y = data.train_targets[: recipe.batch_size].to(device)
    kind, scored = task.shape.output_kind, task.scored_steps
    steps = [
        make_training_step(net.train(), recipe, kind, scored)
        for net in _seed_nets(model, task, recipe, device)
    ]
    stack = SeedStack(_seed_nets(model, task, recipe, device), recipe, kind, scored)
    xs, ys = x.expand(SEEDS, *x.shape), y.expand(SEEDS, *y.shape)
    first_apart = torch.stack([step(x, y, None)[0] for step in steps])
    torch.testing.assert_close(stack.step(xs, ys), first_apart, rtol=1e-4, atol=1e-5)

    def apart() -> Any:
        return [step(x, y, None) for step in steps]

    def together() -> Any:
        return stack.step(xs, ys)

    benchmark.group = f"{task.name} x {model.name}: {SEEDS} seeds, one training step each"
    info = {"kind": "seeds", "mode": mode, "seeds": SEEDS, "task": task.name, "model": model.name}
    measure(
        benchmark,
        apart if mode == "apart" else together,
        device,
        rounds=rounds,
        items=SEEDS * x.shape[0] * x.shape[1],
        unit="tokens" if task.shape.input_kind == "tokens" else "steps",
        info=info,
    )
