"""What of a cell record a tracker logs, the same for every tracker: the figures of each epoch,
the final figures, the cell's hyperparameters and its tags.

Names keep the record's own columns (those of cells.csv and curves.csv), under ``epoch/``
for the per-epoch curve and ``final/`` for the reported figures, so the selected epoch's
``final/val_loss`` never mixes into the curve's ``epoch/val_loss``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

EPOCH = "epoch/"
FINAL = "final/"
#: record columns that hold a figure of the cell (beside bookkeeping such as ``seed``)
FIGURE_PREFIXES = ("train_", "val_", "test_", "task_")
FIGURE_KEYS = ("params", "wall_seconds", "selected_epoch", "best_epoch", "epochs_run")
NOT_FIGURES = ("test_evaluations",)
#: the recipe fields a record carries itself (they may differ per cell: --params, a tune)
RECIPE_KEYS = (
    "epochs", "batch_size", "hidden_size", "num_layers", "optimizer", "lr", "weight_decay"
)  # fmt: skip
SETTING_KEYS = ("select", "patience", "until", "config_hash", "device", "dtype")
VERSION_KEYS = ("plugin_task", "plugin_model", "torch_version", "python_version")

Scalar = str | int | float | bool | None


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, int, float)):
        return float(value)
    return None


def epoch_figures(record: Mapping[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """``(epoch, {"epoch/train_loss": ..., "epoch/val_loss": ...})`` for each epoch of the
    curve (a failed cell's curve may be empty)."""
    rows = []
    for row in record.get("curve") or []:
        epoch = row.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            continue
        figures = {EPOCH + key: _number(value) for key, value in row.items() if key != "epoch"}
        rows.append((epoch, {key: value for key, value in figures.items() if value is not None}))
    return rows


def final_figures(record: Mapping[str, Any]) -> dict[str, float]:
    """The cell's reported figures, ``{"final/test_loss": ..., "final/params": ...}``: the
    selected epoch's train and validation figures, the test figures, the task's own numeric
    metrics (a boolean as 0 or 1), the parameter count and the seconds spent."""
    figures = {}
    for key, value in record.items():
        if key in NOT_FIGURES or not (key.startswith(FIGURE_PREFIXES) or key in FIGURE_KEYS):
            continue
        number = _number(value)
        if number is not None:
            figures[FINAL + key] = number
    return figures


def final_step(record: Mapping[str, Any]) -> int:
    """The epoch the final figures belong to: the selected one, else the last one run."""
    for key in ("selected_epoch", "epochs_run"):
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return len(record.get("curve") or [])


def cell_params(record: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Scalar]:
    """The cell's hyperparameters and versions: ``recipe.<field>`` (the task's recipe as the
    cell trained it), ``task.<option>`` and ``model.<option>`` (with their defaults), the
    selection settings, the config hash, and the versions that produced it; with ``--sweep``
    the variant's values as ``sweep.<name>`` too. Lists and tables are JSON text."""
    task, model = record.get("task"), record.get("model")
    meta = (info.get("tasks") or {}).get(task) or {}
    recipe = {k: v for k, v in (meta.get("recipe") or {}).items() if k != "search"}
    recipe.update({key: record[key] for key in RECIPE_KEYS if key in record})
    model_options = ((info.get("resolved") or {}).get("model_options") or {}).get(model) or {}
    params: dict[str, Any] = {f"recipe.{k}": v for k, v in recipe.items()}
    params.update({f"task.{k}": v for k, v in (meta.get("options") or {}).items()})
    params.update({f"model.{k}": v for k, v in model_options.items()})
    for name, value in (record.get("sweep") or {}).items():  # a --sweep variant's own values
        target, _, option = str(name).rpartition(".")
        if not target and f"recipe.{name}" in params:
            params[f"recipe.{name}"] = value
        elif target and target in (task, model):
            params[f"{'task' if target == task else 'model'}.{option}"] = value
        params[f"sweep.{name}"] = value
    params.update({key: record.get(key) for key in (*SETTING_KEYS, *VERSION_KEYS)})
    params["harness_version"] = (info.get("environment") or {}).get("harness")
    return {key: _scalar(value) for key, value in params.items()}


def cell_tags(record: Mapping[str, Any]) -> dict[str, str]:
    """What a cell is and how it ended: task, model, seed, status, cell id, a sweep's variant
    (``hidden_size=32, mqar.length=64``) and a failed cell's error."""
    tags = {key: str(record.get(key)) for key in ("task", "model", "seed", "status", "cell_id")}
    if record.get("variant"):
        tags["variant"] = str(record["variant"])
    if record.get("error"):
        tags["error"] = str(record["error"])
    return tags


def run_params(info: Mapping[str, Any]) -> dict[str, Scalar]:
    """A whole run's settings and versions from run.json: ``config.<setting>`` (those set),
    ``resolved.<what>`` (the tasks, models and seeds that ran) and ``environment.<what>``."""
    params: dict[str, Any] = {}
    for section in ("config", "resolved", "environment"):
        for key, value in (info.get(section) or {}).items():
            if value not in (None, {}, [], ""):
                params[f"{section}.{key}"] = value
    return {key: _scalar(value) for key, value in params.items()}


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)
