"""Load a saved model and continue a prompt: the state is warmed up on the prompt first."""

from __future__ import annotations

from pathlib import Path

from harness.cells import cell_id
from harness.errors import HarnessError, unknown_name
from harness.report.meta import read_metas
from harness.run_folder import RunFolder


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
    folder = RunFolder.open(out)
    name = cell_id(task_name, model_name, seed)
    if not folder.cell_file(name).is_file():
        raise HarnessError(f"no cell {task_name} x {model_name} seed {seed} in {out}")
    record = folder.read_record(name)
    if not record or not record.get("model_file"):
        raise HarnessError(
            f"{folder.cell_file(name).name} has no saved model: run with --save-models"
        )
    registry = load_plugins()
    if task_name not in registry.tasks:
        raise unknown_name("task", task_name, registry.tasks)
    if model_name not in registry.models:
        raise unknown_name("model", model_name, registry.models)
    info = folder.read_info()
    task = registry.tasks[task_name].with_options(**info["config"]["options"].get(task_name, {}))
    meta = read_metas(info).get(task_name)
    if meta is None:
        raise HarnessError(f"task {task_name!r} is not part of the run in {out}")
    recipe = Recipe(**meta.recipe).with_overrides(
        hidden_size=record["hidden_size"], num_layers=record["num_layers"]
    )
    saved = torch.load(folder.model_file(name), map_location="cpu", weights_only=True)
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
