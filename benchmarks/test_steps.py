"""One training step and one inference step for every installed task x model pair.

Each runs on one batch of the task's recipe batch size from ``task.make_data(0)``, built
before the clock starts. Benchmarks are grouped per task and phase, so the models of a task
sit side by side in one table (training and inference times differ too much to share one).
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.support import measure
from harness.train import make_training_step


def _setup(registry, task_name: str, model_name: str, task_data, device, phase: str):
    """The task, the built net and one batch on ``device``, plus the figure's extra_info."""
    task, model = registry.tasks[task_name], registry.models[model_name]
    recipe = task.recipe
    data = task_data(task)
    x = data.train_inputs[: recipe.batch_size].to(device)
    y = data.train_targets[: recipe.batch_size].to(device)
    torch.manual_seed(0)
    net = model.build(task.shape, recipe.hidden_size, recipe.num_layers).to(device)
    info: dict[str, Any] = {
        "kind": "pair",
        "task": task.name,
        "model": model.name,
        "phase": phase,
        "batch_size": x.shape[0],
        "timesteps": x.shape[1],
        "hidden_size": recipe.hidden_size,
        "num_layers": recipe.num_layers,
        "optimizer": recipe.optimizer,
        "scored_steps": task.scored_steps,
        "params": sum(p.numel() for p in net.parameters()),
        "task_options": task.options(),
    }
    return task, net, x, y, info


def _unit(task) -> str:
    return "tokens" if task.shape.input_kind == "tokens" else "steps"


def test_train_step(benchmark, registry, task_name, model_name, task_data, device, rounds):
    """Forward, backward, clip and optimizer step: exactly the step the training loop runs."""
    task, net, x, y, info = _setup(registry, task_name, model_name, task_data, device, "train")
    step = make_training_step(net.train(), task.recipe, task.shape.output_kind, task.scored_steps)
    benchmark.group = f"{task.name} train"
    measure(
        benchmark,
        lambda: step(x, y, None),
        device,
        rounds=rounds,
        items=x.shape[0] * x.shape[1],
        unit=_unit(task),
        info=info,
    )


def test_infer_step(benchmark, registry, task_name, model_name, task_data, device, rounds):
    """Forward only, under no_grad, from a fresh state: what scoring and generation pay."""
    task, net, x, _, info = _setup(registry, task_name, model_name, task_data, device, "infer")
    net.eval()

    def forward():
        with torch.no_grad():
            return net(x, None)

    benchmark.group = f"{task.name} infer"
    measure(
        benchmark,
        forward,
        device,
        rounds=rounds,
        items=x.shape[0] * x.shape[1],
        unit=_unit(task),
        info=info,
    )
