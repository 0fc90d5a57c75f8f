"""Records to pandas tables: the per-cell table and the per-epoch curves table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.storage.status import OK
from harness.training.timing import TIMING_COLUMNS

#: Columns every per-cell table has, in this order; task-specific ``task_*`` columns follow.
CORE_COLUMNS = [
    "cell_id", "task", "model", "seed", "status", "error",
    "train_loss", "val_loss", "test_loss", "train_perplexity", "val_perplexity", "test_perplexity",
    "train_accuracy", "val_accuracy", "test_accuracy",
    "best_epoch", "selected_epoch", "epochs_run", "stopped_early", "test_evaluations",
    "params", "train_seconds", "wall_seconds",
    *TIMING_COLUMNS,
    "epochs", "batch_size", "hidden_size", "num_layers", "optimizer", "lr", "select", "patience",
    "device", "device_name", "dtype", "threads", "torch_version", "python_version", "config_hash",
]  # fmt: skip
CURVE_COLUMNS = [
    "cell_id",
    "task",
    "model",
    "seed",
    "epoch",
    "train_loss",
    "val_loss",
    "val_perplexity",
    "val_accuracy",
]
_NOT_IN_TABLE = {"curve", "samples", "traceback", "state_dict", "sweep"}


#: A timing belongs to a cell only if these match too (a resumed folder may hold older ones).
_TIMING_KEYS = (
    "task", "model", "device", "batch_size", "hidden_size", "num_layers", "variant_slug",
)  # fmt: skip


def cells_frame(
    records: list[dict[str, Any]], timings: list[dict[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per cell (every seed), core columns first, then the tasks' own metrics.

    The speed columns come from the timing phase (``timings``): every seed of a task x model
    pair carries its pair's figures.
    """
    by_pair = {
        tuple(t.get(k) for k in _TIMING_KEYS): {c: t[c] for c in TIMING_COLUMNS if c in t}
        for t in timings or []
        if not t.get("error")
    }
    rows = []
    for r in records:
        row = {k: v for k, v in r.items() if k not in _NOT_IN_TABLE}
        sweep = r.get("sweep")
        if isinstance(sweep, dict):  # a sweep's variant: one typed column per swept name
            row.update({f"sweep_{name}": value for name, value in sweep.items()})
        if r.get("status") == OK:
            row.update(by_pair.get(tuple(r.get(k) for k in _TIMING_KEYS), {}))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in CORE_COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = sorted(c for c in frame.columns if c not in CORE_COLUMNS)
    return frame[CORE_COLUMNS + extra]


def typed_per_task(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-cell table as cells.csv and cells.parquet store it: every task's own metrics
    keep their type.

    Tasks' own metrics share the ``task_<key>`` columns. Where two tasks fill one with values of
    different kinds (hello's boolean ``exact`` beside another task's float ``exact``, or text
    beside numbers), Parquet could hold the column only as text; instead it becomes one column
    per task, ``task_<key>__<task>`` (a task name never holds ``__``), in its place, each with
    its task's values and type. A column whose tasks agree on the kind stays as it is, so a
    reader's ``task_<key>`` is there whenever its type is one.
    """

    def kind(value: Any) -> str | None:
        if value is None or (isinstance(value, float) and value != value):
            return None  # missing: no kind
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, (int, float)):
            return "number"
        return "text" if isinstance(value, str) else type(value).__name__

    if "task" not in frame:
        return frame
    columns: dict[str, pd.Series] = {}
    for column in frame.columns:
        values = frame[column]
        kinds: dict[Any, set[str]] = {}
        if isinstance(column, str) and column.startswith("task_"):
            for task, value in zip(frame["task"], values.astype(object)):
                if kind(value) is not None:
                    kinds.setdefault(task, set()).add(kind(value))
        if len(kinds) < 2 or len(set().union(*kinds.values())) < 2:
            columns[column] = values
            continue
        for task in kinds:
            columns[f"{column}__{task}"] = values.astype(object).where(frame["task"] == task)
    return pd.DataFrame(columns, index=frame.index)


def curves_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell and epoch: training loss and validation figures (then, for a task that
    ranks by a metric of its own, its validation value ``val_task_<key>``)."""
    rows = [
        {
            "cell_id": r["cell_id"],
            "task": r["task"],
            "model": r["model"],
            "seed": r["seed"],
            **({"variant": r["variant"]} if r.get("variant") else {}),
            **point,
        }
        for r in records
        for point in r.get("curve") or []
    ]
    frame = pd.DataFrame(rows)
    for column in CURVE_COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = [c for c in frame.columns if c not in CURVE_COLUMNS]
    return frame[CURVE_COLUMNS + extra]
