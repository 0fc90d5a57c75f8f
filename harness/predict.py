"""Load a saved model and continue a prompt: the state is warmed up on the prompt first."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError, unknown_name


def continue_prompt(
    out: Path, task_name: str, model_name: str, seed: int, prompt: str, steps: int
) -> str:
    """The prompt and its continuation, as the task shows them."""
    import torch

    from harness.generate import continue_tokens, rollout_values
    from harness.plugins import load_plugins
    from harness.task import Recipe

    if steps < 1:
        raise HarnessError(f"--steps must be a positive integer, not {steps}")
    cell_file = out / "cells" / f"{task_name}__{model_name}__seed{seed}.json"
    if not cell_file.is_file():
        raise HarnessError(f"no cell {task_name} x {model_name} seed {seed} in {out}")
    record = json.loads(cell_file.read_text())
    if not record.get("model_file"):
        raise HarnessError(f"{cell_file.name} has no saved model: run with --save-models")
    registry = load_plugins()
    if task_name not in registry.tasks:
        raise unknown_name("task", task_name, registry.tasks)
    if model_name not in registry.models:
        raise unknown_name("model", model_name, registry.models)
    info = json.loads((out / "run.json").read_text())
    task = registry.tasks[task_name].with_options(**info["config"]["options"].get(task_name, {}))
    recipe = Recipe(**info["tasks"][task_name]["recipe"]).with_overrides(
        hidden_size=record["hidden_size"], num_layers=record["num_layers"]
    )
    saved = torch.load(out / record["model_file"], map_location="cpu", weights_only=True)
    net = registry.models[model_name].build(task.shape, recipe.hidden_size, recipe.num_layers)
    net.load_state_dict(saved["state_dict"])
    net.eval()
    try:
        values = task.encode_prompt(prompt)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    if task.shape.input_kind == "tokens":
        return task.decode(continue_tokens(net, values, steps))
    prefix = torch.tensor(values, dtype=torch.float32).view(1, -1, 1)
    generated = rollout_values(net, prefix, steps)[0, :, 0].tolist()
    return task.decode(values + generated)
