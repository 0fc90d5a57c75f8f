"""A sweep's results read per task: a leaderboard per variant, a model x variant summary, and
Zoology-style curves (the primary metric against a swept value, a panel per value of another).

A cell of a sweep carries its variant (``variant``, the label, and ``sweep_<name>`` columns
with the typed values). The curve's x axis is the *last* swept name that applies to the task
with two values or more (``--sweep mqar.length=64,128 --sweep hidden_size=32,64`` draws
accuracy against hidden size, a panel per length: Zoology's figure 2); each combination of the
other swept names is a panel. A log axis where the values grow by a constant factor. Each
model's line is its mean over seeds with the 95% interval as a band; the max over seeds (what
MAD, Zoology and the Chomsky-hierarchy paper publish) is drawn as a dotted line, labelled.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pandas as pd

from harness.report.meta import TaskMeta
from harness.storage.status import OK

PREFIX = "sweep_"


def swept_names(cells: pd.DataFrame, task: str, order: list[str] | None = None) -> list[str]:
    """The swept names that vary across ``task``'s cells, in ``order`` (the order the sweep
    gave them, run.json's ``sweep``; names not in it follow)."""
    rows = cells[cells["task"] == task]
    names = [c.removeprefix(PREFIX) for c in cells.columns if c.startswith(PREFIX)]
    rank = {name: i for i, name in enumerate(order or [])}
    names.sort(key=lambda n: rank.get(n, len(rank)))
    return [n for n in names if rows[PREFIX + n].dropna().astype(str).nunique() >= 2]


def variants(cells: pd.DataFrame, task: str) -> list[str]:
    """``task``'s variant labels, ordered by their swept values (empty outside a sweep)."""
    if "variant" not in cells:
        return []
    rows = cells[(cells["task"] == task) & cells["variant"].notna()]
    rows = rows[rows["variant"].astype(str) != ""]
    names = [c for c in cells.columns if c.startswith(PREFIX)]
    order = rows.sort_values(names, kind="stable") if names else rows  # by the typed values
    return list(dict.fromkeys(str(v) for v in order["variant"]))


def is_geometric(values: list[Any]) -> bool:
    """Whether positive numbers grow by a roughly constant factor (plot them on a log axis)."""
    if not values or not all(_number(v) for v in values):
        return False
    numbers = sorted(float(v) for v in values)
    if len(numbers) < 2 or numbers[0] <= 0:
        return False
    ratios = [b / a for a, b in zip(numbers, numbers[1:])]
    return min(ratios) > 1.5 and max(ratios) / min(ratios) < 1.5


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary(cells: pd.DataFrame, task: str, meta: TaskMeta) -> pd.DataFrame:
    """Model x variant: the test primary metric's mean ± 95% CI over seeds and, in brackets,
    the max over seeds (the min for a lower-is-better metric), for every finished cell."""
    from harness.report.formatting import format_value
    from harness.report.ranking import interval

    metric = meta.primary_metric
    rows = cells[(cells["task"] == task) & (cells["status"] == OK)]
    labels = variants(cells, task)
    if rows.empty or not labels or metric not in rows:
        return pd.DataFrame()
    best = "max" if meta.higher_is_better else "min"
    table = []
    for model in dict.fromkeys(rows["model"]):
        row: dict[str, Any] = {"model": model}
        for label in labels:
            values = pd.to_numeric(
                rows.loc[(rows["model"] == model) & (rows["variant"] == label), metric],
                errors="coerce",
            ).dropna()
            if values.empty:
                row[label] = ""
                continue
            mean, half, n = interval(values)
            extreme = values.max() if meta.higher_is_better else values.min()
            row[label] = f"{format_value(mean, half)} ({best} {format_value(extreme)}, n={n})"
        table.append(row)
    return pd.DataFrame(table)


def _axes_of(
    cells: pd.DataFrame, task: str, order: list[str] | None
) -> tuple[str, list[str]] | None:
    names = swept_names(cells, task, order)
    rows = cells[cells["task"] == task]
    numeric = [n for n in names if all(_number(v) for v in rows[PREFIX + n].dropna())]
    if not numeric:
        return None
    x = numeric[-1]
    return x, [n for n in names if n != x]


def curve_figure(
    cells: pd.DataFrame,
    task: str,
    meta: TaskMeta,
    colours: dict[str, str],
    order: list[str] | None = None,
) -> Any | None:
    """The task's sweep curves, or ``None`` when no numeric swept name varies for it;
    ``order``: the swept names in the order given (the last is the x axis)."""
    from harness.report.plots import _pyplot
    from harness.report.ranking import interval

    found = _axes_of(cells, task, order)
    metric = meta.primary_metric
    rows = cells[(cells["task"] == task) & (cells["status"] == OK)]
    if found is None or rows.empty or metric not in rows:
        return None
    x, others = found
    panel_values = [list(dict.fromkeys(rows[PREFIX + n].dropna())) for n in others]
    panels = list(itertools.product(*panel_values)) or [()]
    plt = _pyplot()
    width = min(max(4.2 * len(panels), 7.0), 13)
    values_all = pd.to_numeric(rows[metric], errors="coerce").dropna()
    low = 0.0 if (values_all >= 0).all() else -math.inf  # a band never leaves the possible
    high = 1.0 if "accuracy" in metric and (values_all <= 1).all() else math.inf
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width, 3.6), sharey=True, squeeze=False, layout="constrained"
    )
    xs_all = sorted(set(rows[PREFIX + x].dropna()))
    for ax, values in zip(axes[0], panels):
        chosen = rows
        for name, value in zip(others, values):
            chosen = chosen[chosen[PREFIX + name] == value]
        for model in dict.fromkeys(rows["model"]):
            points = []
            for xv in xs_all:
                picked = chosen[(chosen["model"] == model) & (chosen[PREFIX + x] == xv)]
                series = pd.to_numeric(picked[metric], errors="coerce").dropna()
                if series.empty:
                    continue
                mean, half, _ = interval(series)
                best = series.max() if meta.higher_is_better else series.min()
                points.append((xv, mean, 0.0 if math.isnan(half) else half, best))
            if not points:
                continue
            px, mean, half, best = zip(*points)
            colour = colours.get(model)
            ax.plot(px, mean, marker="o", color=colour, label=model)
            ax.fill_between(
                px, [max(m - h, low) for m, h in zip(mean, half)],
                [min(m + h, high) for m, h in zip(mean, half)],
                color=colour, alpha=0.15, linewidth=0,
            )  # fmt: skip
            ax.plot(px, best, linestyle=":", color=colour, alpha=0.8)
        if is_geometric(xs_all):
            ax.set_xscale("log", base=2 if all(float(v).is_integer() for v in xs_all) else 10)
            ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
        ax.set_xlabel(x)
        title = ", ".join(f"{n}={v}" for n, v in zip(others, values))
        ax.set_title(title or task, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} ({meta.direction} is better)")
    from matplotlib.lines import Line2D

    handles, labels = axes[0][0].get_legend_handles_labels()
    best = "max" if meta.higher_is_better else "min"
    handles.append(Line2D([], [], color="grey", linestyle=":"))
    labels.append(f"{best} over seeds (dotted); band: 95% CI")
    ncol = min(len(labels), 4 if len(panels) > 1 else 3)
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8)
    fig.suptitle(f"{task}: {metric} against {x}", fontsize=11)
    return fig
