"""report.html: the whole run in one self-contained file that opens from disk.

No network requests (a Content-Security-Policy forbids them), every figure inline SVG,
sortable leaderboards from a few lines of inline JavaScript. Everything a plugin or a user
provides goes through jinja2's autoescape, so a task description holding ``<script>`` shows
as text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report.formatting import format_value
from harness.report.meta import TaskMeta
from harness.report.run import LoadedRun
from harness.storage.status import OK

#: Per-cell settings shown as each model's chosen hyperparameters, where the run has them.
HYPERPARAMETERS = [
    "epochs", "epochs_run", "best_epoch", "batch_size", "hidden_size", "num_layers",
    "optimizer", "lr", "params",
]  # fmt: skip
CAPTIONS = {
    "loss_curves": "Training (dashed) and validation (solid) loss per epoch, mean over seeds.",
    "metrics": "Test metrics and speed per model: mean and 95% interval over seeds; "
    "baselines and the best achievable as lines (or, off the scale, arrows in the legend).",
    "predictions": "One test curve: truth, teacher-forced predictions and the rollout.",
}


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


def render(run: LoadedRun, figures: dict[str, dict[str, str]]) -> str:
    """The report as a string; ``figures`` maps task -> kind -> inline SVG."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("report.html.j2")
    return template.render(**context(run, figures))


def context(run: LoadedRun, figures: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Everything the template shows, as plain values (the template only lays them out)."""
    from harness.version import __version__

    info, cells = run.info, run.cells
    boards = {board.task: board for board in run.leaderboards()}
    tasks = []
    for index, (name, meta) in enumerate(run.metas.items()):
        board = boards.get(name)
        tasks.append(
            {
                "name": name,
                "anchor": f"{index}-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}",
                "meta": meta,
                "board": _board(board.table(), len(board.frame)) if board else None,
                "references": _references(meta),
                "recipe": sorted((k, _text(v)) for k, v in meta.recipe.items()),
                "options": sorted((k, _text(v)) for k, v in meta.options.items()),
                "chosen": _chosen(cells[cells["task"] == name]),
                "figures": [
                    {"caption": CAPTIONS.get(kind, kind), "svg": svg}
                    for kind, svg in figures.get(name, {}).items()
                ],
            }
        )
    tracebacks = {r["cell_id"]: r.get("traceback") for r in run.records if "cell_id" in r}
    failed = [
        {**row, "traceback": tracebacks.get(row["cell_id"]) or ""}
        for row in run.unfinished.astype(object).fillna("").to_dict("records")
    ]
    settings = {**(info.get("config") or {}), **(info.get("resolved") or {})}
    return {
        "title": run.folder.path.name,
        "status": info.get("status", "unknown"),
        "started": info.get("started", ""),
        "finished": info.get("finished", ""),
        "counts": cells["status"].value_counts().to_dict(),
        "tasks": tasks,
        "failed": failed,
        "broken": info.get("broken_plugins") or [],
        "plugins": info.get("plugins") or [],
        "environment": [(k, _text(v)) for k, v in (info.get("environment") or {}).items()],
        "settings": [(k, _text(v)) for k, v in settings.items()],
        "version": __version__,
        "format_version": info.get("format_version", "?"),
    }


@dataclass
class Board:
    """A leaderboard as strings: the models' rows (sortable), then the reference rows."""

    columns: list[str]
    models: list[list[str]]
    references: list[list[str]]


def _board(shown: pd.DataFrame, models: int) -> Board:
    rows = shown.astype(str).values.tolist()
    return Board(list(shown.columns), rows[:models], rows[models:])


def _references(meta: TaskMeta) -> list[dict[str, str]]:
    rows = [
        {"name": b.name, "description": b.description, "figures": _figures(b.metrics)}
        for b in meta.baselines
    ]
    if meta.optimum:
        what = "the best any model can expect on this task's test data"
        rows.append(
            {"name": "best achievable", "description": what, "figures": _figures(meta.optimum)}
        )
    return rows


def _figures(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {format_value(v)}" for k, v in metrics.items())


def _chosen(cells: pd.DataFrame) -> Table | None:
    """Per model, the values each hyperparameter took over its cells ("a, b" where they vary)."""
    ok = cells[cells["status"] == OK]
    columns = [c for c in HYPERPARAMETERS if c in ok and ok[c].notna().any()]
    if ok.empty or not columns:
        return None
    rows = []
    for model, group in ok.groupby("model", sort=False):
        values = [
            ", ".join(dict.fromkeys(format_value(v, whole=True) for v in group[c].dropna()))
            for c in columns
        ]
        rows.append([str(model), *values])
    return Table(["model", *columns], rows)


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)
