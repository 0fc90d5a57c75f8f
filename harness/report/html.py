"""report.html: the whole run in one self-contained file that opens from disk.

No network requests (a Content-Security-Policy forbids them), every figure inline SVG,
sortable leaderboards from a few lines of inline JavaScript. Everything a plugin or a user
provides goes through jinja2's autoescape, so a task description holding ``<script>`` shows
as text.

What a reader meets first: one verdict per task (``report.verdict``), then per task its
leaderboard with the test figures shown and the validation and training figures, speed, and
size and recipe columns each behind a toggle (plain checkboxes and CSS, so they work without
the script), the model column pinned while the table scrolls sideways, and the figures one
per row. The page itself never grows wider than the window: wide tables scroll in their box.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.report import ranking
from harness.report.formatting import format_setting, format_value
from harness.report.meta import TaskMeta
from harness.report.run import Leaderboard, LoadedRun, unit_name
from harness.storage.status import OK

#: Per-cell settings shown as each model's chosen hyperparameters, where the run has them.
HYPERPARAMETERS = [
    "epochs", "epochs_run", "best_epoch", "batch_size", "hidden_size", "num_layers",
    "optimizer", "lr", "weight_decay", "params",
]  # fmt: skip
#: Of those, the counts (written whole, with thousands, as the leaderboard writes them).
COUNTS = {"epochs", "epochs_run", "best_epoch", "batch_size", "hidden_size", "num_layers", "params"}
CAPTIONS = {
    "loss_curves": "Training (dashed) and validation (solid) loss per epoch, mean over seeds.",
    "metrics": "Test metrics per model, one row each: mean and 95% interval over seeds (no "
    "interval with one seed), on an axis fitted to the models' figures; baselines and the best "
    "achievable as vertical lines, or, off the scale, named under the axis.",
    "predictions": "One test curve: truth, teacher-forced predictions and the rollout.",
    "sweep": "The primary metric against the last swept value, a panel per value of the other "
    "swept names: each model's mean over seeds with its 95% interval as a band, the best seed "
    "dotted.",
}
SPEED_CAPTION = " Speed rows: the timing phase's median and interquartile range of timed rounds."
#: The figures in the order a task's section shows them; kinds not listed follow.
FIGURE_ORDER = ["sweep", "metrics", "loss_curves", "predictions"]


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
    boards = {board.name: board for board in run.leaderboards()}
    verdicts = {v.task: v for v in run.verdicts()}
    timing = info.get("timing") or {}
    tasks = []
    seen: set[str] = set()
    for index, (task, variant, meta) in enumerate(run.units):
        name = unit_name(task, variant)
        first = task not in seen  # a swept task's curves and summary go with its first board
        seen.add(task)
        board = boards.get(name)
        shown = _board(board, timing) if board else None
        drawn = figures.get(task, {}) if first else {}
        kinds = sorted(drawn, key=lambda k: FIGURE_ORDER.index(k) if k in FIGURE_ORDER else 99)
        tasks.append(
            {
                "name": name,
                "anchor": f"{index}-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}",
                "meta": meta,
                "verdict": verdicts[name],
                "board": shown,
                "references": _references(meta),
                "optimum_notes": ranking.optimum_notes(meta),
                "recipe": sorted((k, _text(v)) for k, v in meta.recipe.items()),
                "options": sorted((k, _text(v)) for k, v in meta.options.items()),
                "chosen": _chosen(cells[cells["task"] == task], meta) if first else None,
                "sweep": _sweep_summary(cells, task, meta) if first and variant else None,
                "figures": [
                    {"caption": _caption(kind, shown), "svg": drawn[kind]} for kind in kinds
                ],
            }
        )
    tracebacks = {r["cell_id"]: r.get("traceback") for r in run.records if "cell_id" in r}
    broken, skipped = ranking.split_unfinished(cells)
    failed = [
        {**row, "traceback": tracebacks.get(row["cell_id"]) or ""}
        for row in broken.astype(object).fillna("").to_dict("records")
    ]
    pairs = skipped.drop_duplicates(["task", "model"]).astype(object).fillna("")
    settings = {**(info.get("config") or {}), **(info.get("resolved") or {})}
    return {
        "title": run.folder.path.name,
        "status": info.get("status", "unknown"),
        "started": info.get("started", ""),
        "finished": info.get("finished", ""),
        "counts": cells["status"].value_counts().to_dict(),
        "tasks": tasks,
        "failed": failed,
        "not_applicable": pairs[["task", "model", "error"]].to_dict("records"),
        "broken": info.get("broken_plugins") or [],
        "plugins": info.get("plugins") or [],
        "environment": [(k, _text(v)) for k, v in (info.get("environment") or {}).items()],
        "settings": [(k, _text(v)) for k, v in settings.items()],
        "version": __version__,
        "format_version": info.get("format_version", "?"),
    }


@dataclass
class Board:
    """A leaderboard as strings: the models' rows (sortable), then the reference rows; each
    column with its group (``ranking.GROUPS``), the test figures first."""

    columns: list[str]
    groups: list[str]
    models: list[list[str]]
    references: list[list[str]]
    #: The toggles this board offers: (group, label), in order (groups it has columns of).
    toggles: list[tuple[str, str]] = field(default_factory=list)
    #: What the speed columns mean here (their reference model, whether the machine was
    #: steady); shown with the speed columns.
    speed_notes: list[str] = field(default_factory=list)

    #: Whether the timing phase left figures here (not only the cells' training time).
    timed: bool = False

    @property
    def classes(self) -> list[str]:
        """Each column's CSS classes: its group (hidden until its toggle is ticked), and
        ``c-rank`` / ``c-model`` for the two columns pinned while the table scrolls."""
        pinned = {"rank": " c-rank", "model": " c-model"}
        return [f"g-{g}{pinned.get(c, '')}" for c, g in zip(self.columns, self.groups)]


def _board(board: Leaderboard, timing: dict[str, Any]) -> Board:
    shown = board.table()
    order = list(ranking.GROUPS)
    groups = {c: ranking.column_group(c, board.meta) for c in shown.columns}
    columns = sorted(shown.columns, key=lambda c: order.index(groups[c]))  # stable: in group
    shown = shown[columns]
    rows = shown.astype(str).values.tolist()
    models = len(board.frame)
    present = [g for g in order[1:] if g in groups.values()]
    return Board(
        columns=columns,
        groups=[groups[c] for c in columns],
        models=rows[:models],
        references=rows[models:],
        toggles=[(g, ranking.GROUPS[g]) for g in present],
        speed_notes=_speed_notes(board, timing) if "speed" in present else [],
        timed=bool(ranking.speed_columns(board.frame)),
    )


def _speed_notes(board: Leaderboard, timing: dict[str, Any]) -> list[str]:
    frame = board.frame
    timed = ranking.speed_columns(frame)
    if not timed:  # only the cells' own training time: no timing phase to speak of
        return ["train_wall_seconds: the cells' training wall time, mean over seeds."]
    notes = [
        "Speed from the timing phase (each pair's steps timed on their own before any cell "
        "ran): median [interquartile range] of the timed rounds; train_wall_seconds is the "
        "cells' own training time."
    ]
    reference = (timing.get("references") or {}).get(board.task)
    if reference is None and "speed_reference" in frame:
        named = frame["speed_reference"].dropna()
        reference = str(named.iloc[0]) if len(named) else None
    if any(c.endswith("_speed_vs_ref") for c in timed):
        against = f"{reference}'s" if reference else "the reference model's"
        notes.append(
            f"train/infer/gen x {reference or 'reference'}: speed as a multiple of {against} "
            "(above 1: faster), from rounds timed side by side (ratios survive a machine's "
            "drift that absolute figures do not)."
        )
    unstable = bool(timing.get("unstable"))
    if "speed_unstable" in frame:
        unstable = unstable or bool(frame["speed_unstable"].fillna(0).astype(bool).any())
    if unstable:
        reason = timing.get("unstable_reason") or "the machine moved while it was timed"
        notes.append(f"Unstable: {reason}. Read absolute speeds as rough.")
    return notes


def _caption(kind: str, board: Board | None) -> str:
    text = CAPTIONS.get(kind, kind)
    if kind == "metrics" and board is not None and board.timed:
        text += SPEED_CAPTION
    return text


def _sweep_summary(cells: Any, task: str, meta: TaskMeta) -> Table | None:
    """A swept task's model x variant table (mean ± CI and the best seed), or ``None``."""
    from harness.report.sweep import summary

    frame = summary(cells, task, meta)
    if frame.empty:
        return None
    return Table(list(frame.columns), frame.astype(str).values.tolist())


def _references(meta: TaskMeta) -> list[dict[str, str]]:
    realized = ranking.realized_optima(meta)
    names = {best.realized_by for best in realized.values()}
    rows = [
        {
            "name": b.name,
            "description": b.description
            + ("; on this test set it is the realized optimum" if b.name in names else ""),
            "figures": _figures(b.metrics),
        }
        for b in meta.baselines
    ]
    if meta.optimum:
        what = "the best any model can expect on this task's test data"
        if realized:
            what += " (an expectation over test sets: see the note below)"
        rows.append(
            {"name": "best achievable", "description": what, "figures": _figures(meta.optimum)}
        )
    return rows


def _figures(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {format_value(v)}" for k, v in metrics.items())


def _chosen(cells: pd.DataFrame, meta: TaskMeta) -> Table | None:
    """Per model, the values each hyperparameter took over its cells ("a, b" where they vary),
    every hyperparameter a tune chose included; each written as the leaderboard writes it."""
    ok = cells[cells["status"] == OK]
    columns = [c for c in HYPERPARAMETERS if c in ok and ok[c].notna().any()]
    tuned = {m: pair.get("params") or {} for m, pair in meta.recipes.items()}
    extra = [k for params in tuned.values() for k in params if k not in columns]
    extra = list(dict.fromkeys(extra))
    if ok.empty or not (columns or extra):
        return None
    rows = []
    for model, group in ok.groupby("model", sort=False):
        values = [
            ", ".join(dict.fromkeys(_setting(c, v) for v in group[c].dropna())) for c in columns
        ]
        chosen = tuned.get(str(model), {})
        values += [_setting(k, chosen[k]) if k in chosen else "" for k in extra]
        rows.append([str(model), *values])
    return Table(["model", *columns, *extra], rows)


def _setting(column: str, value: Any) -> str:
    return format_value(value, whole=True) if column in COUNTS else format_setting(value)


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    if isinstance(value, float):
        return format_setting(value)
    return "" if value is None else str(value)
