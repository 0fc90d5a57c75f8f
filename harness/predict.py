"""Load a saved model and continue a prompt: the state is warmed up on the prompt first."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, unknown_name
from harness.grid.cells import cell_id
from harness.plugin_api.names import checked_name
from harness.report.meta import read_metas
from harness.storage.run_folder import RunFolder


def continue_prompt(
    out: Path, task_name: str, model_name: str, seed: int, prompt: str, steps: int
) -> str:
    """The prompt and its continuation, as the task shows them."""
    import torch

    from harness.plugin_api.manager import load_plugins
    from harness.plugin_api.task import Recipe
    from harness.training.generate import continue_tokens, rollout_values

    if steps < 1:
        raise HarnessError(f"--steps must be a positive integer, not {steps}")
    folder = RunFolder.open(out)
    name = cell_id(checked_name("task", task_name), checked_name("model", model_name), seed)
    cell_file = folder.cell_file(name)
    if not cell_file.is_file():
        raise HarnessError(f"no cell {task_name} x {model_name} seed {seed} in {out}")
    record = _read_object(cell_file)
    if not record.get("model_file"):
        raise HarnessError(f"{cell_file.name} has no saved model: run with --save-models")
    registry = load_plugins()
    if task_name not in registry.tasks:
        raise unknown_name("task", task_name, registry.tasks)
    if model_name not in registry.models:
        raise unknown_name("model", model_name, registry.models)
    info = _read_object(folder.run_file)
    try:
        meta = read_metas(info).get(task_name)
        if meta is None:
            raise HarnessError(f"task {task_name!r} is not part of the run in {out}")
        task = registry.tasks[task_name].with_options(
            **info["config"]["options"].get(task_name, {})
        )
        recipe = Recipe(**meta.recipe).with_overrides(
            hidden_size=record["hidden_size"], num_layers=record["num_layers"]
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        where = folder.run_file
        raise HarnessError(f"{where} does not describe task {task_name}: {exc!r}") from None
    weights = _model_path(folder, name, record["model_file"])
    try:  # weights_only: a tampered file's pickle payload is refused, never run
        saved = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HarnessError(f"cannot load saved model {weights}: {_load_error(exc)}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise HarnessError(f"{weights} is not a model saved by harness run --save-models")
    if saved.get("config") != record.get("config_hash"):
        raise HarnessError(
            f"{weights} was saved under other settings than {cell_file.name}: "
            "rerun with --save-models"
        )
    try:
        model = registry.models[model_name].with_options(
            **info["config"]["options"].get(model_name, {})
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise HarnessError(f"{folder.run_file}: model {model_name}'s options: {exc}") from None
    net = model.make(task.shape, recipe.hidden_size, recipe.num_layers)
    try:
        net.load_state_dict(saved["state_dict"])
    except Exception as exc:
        raise HarnessError(
            f"{weights} does not fit model {model_name!r} on task {task_name!r}: {_first_line(exc)}"
        ) from None
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


def _read_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or a one-line error that names the file."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path}: {_first_line(exc)}") from None
    if not isinstance(value, dict):
        raise HarnessError(f"cannot read {path}: not a JSON object")
    return value


def _model_path(folder: RunFolder, name: str, model_file: object) -> Path:
    """The saved weights of cell ``name``; the record must point where the run wrote them
    (compared once resolved: ``models/../models/x.pt`` is ``models/x.pt``)."""
    path = folder.model_file(name)
    try:
        if not isinstance(model_file, str):
            raise ValueError("not a path")
        target, root = (folder.path / model_file).resolve(), folder.path.resolve()
        inside = target.is_relative_to(root)
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop
        inside = False
    if not inside:
        raise HarnessError(f"model_file {model_file!r} points outside {folder.path}")
    if target != path.resolve():
        raise HarnessError(
            f"model_file {model_file!r} is not this cell's weights ({folder.model_name(name)})"
        )
    if not path.is_file():
        raise HarnessError(f"saved model {path} is missing")
    return path


def _load_error(exc: BaseException) -> str:
    """Why torch could not load a weights file, in one line, without torch's advice to load
    with ``weights_only=False``: that would run whatever code a tampered file holds."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if "weights only load failed" in text.lower():
        detail = (text.partition("WeightsUnpickler error:")[2].strip().splitlines() or [""])[0]
        detail = detail.split(". ")[0].strip().rstrip(".")
        reason = f" ({detail})" if detail else ""
        return f"it is damaged or holds more than tensors and plain values{reason}"
    if isinstance(exc, EOFError):
        return "the file ends early (empty or cut short)"
    return _first_line(exc).split(". ")[0]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
