"""matplotlib figures, one set per task: loss curves, metric bars, and sample predictions.

Each function returns a figure (or ``None`` when there is nothing to draw); the caller saves
it where the run folder says, as PNG (:func:`save_png`) or inline SVG (:func:`to_svg`).
A model keeps one colour in every plot of a run (:func:`model_colours`); references (baselines,
the best achievable) are drawn in greys, and one that lies far off a plot's scale is listed in
the legend with an arrow and its value instead of squashing the models' figures. Legends sit
outside the axes (right of them, or below the tick labels), so they never cover data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.meta import TaskMeta


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Reference lines: greys and dot-dash patterns, never a model's colour, and never plain
#: dashes (the loss curves' training lines are dashed).
REFERENCE_STYLES = [
    ("black", ":"),
    ("dimgrey", "-."),
    ("grey", (0, (3, 1, 1, 1, 1, 1))),
    ("darkgrey", (0, (1, 3))),
]


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """A fixed colour per model for every plot of a run: models in name order, tab10 then tab20."""
    import matplotlib

    names = sorted(set(models))
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: matplotlib.colors.to_hex(palette(i % palette.N)) for i, name in enumerate(names)}


def _references(meta: TaskMeta | None, metric: str) -> list[tuple[str, float, Any, Any]]:
    """(label, value, colour, linestyle) of the baselines and the optimum that have ``metric``."""
    if meta is None:
        return []
    found = [
        (f"baseline: {b.name}", b.metrics[metric]) for b in meta.baselines if metric in b.metrics
    ]
    if metric in meta.optimum:
        found.insert(0, ("best achievable", meta.optimum[metric]))
    return [
        (name, float(value), *REFERENCE_STYLES[i % len(REFERENCE_STYLES)])
        for i, (name, value) in enumerate(found)
    ]


def _draw_references(
    ax: Any, references: list[tuple[str, float, Any, Any]], low: float, high: float, log: bool
) -> list[tuple[Any, str]]:
    """A line for each reference near the data's range [low, high]. One far outside it (or not
    drawable on a log axis) is not drawn in the axes: it comes back as a legend entry, an arrow
    and its value, for :func:`_legend_outside` to show beside the plot."""
    from matplotlib.lines import Line2D

    off_scale = []
    for name, value, colour, style in references:
        if log:
            near = value > 0 and low / 10 <= value <= high * 10
        else:
            span = max(high - min(low, 0), abs(high), 1e-12)
            near = min(low, 0) - span <= value <= high + 2 * span
        if near:
            ax.axhline(value, color=colour, linestyle=style, label=f"{name} ({value:.4g})")
            continue
        side = "above" if value > high else "below"
        arrow = r"$\uparrow$" if side == "above" else r"$\downarrow$"
        handle = Line2D([], [], color=colour, marker=arrow, markersize=8, linestyle="none")
        off_scale.append((handle, f"{name}: {value:.4g} (off scale, {side})"))
    return off_scale


def _legend_outside(
    container: Any,
    ax: Any,
    extra: Sequence[tuple[Any, str]] = (),
    where: str = "right",
    fontsize: float = 8,
    ncol: int = 1,
) -> None:
    """The legend of ``ax`` (plus ``extra`` entries) outside the axes, where it cannot cover the
    data: at the right of the axes, or (``where="below"``) at the foot of ``container``, a
    (sub)figure laid out with constrained layout, which makes room for it below the tick labels."""
    handles, labels = ax.get_legend_handles_labels()
    handles = [*handles, *(handle for handle, _ in extra)]
    labels = [*labels, *(label for _, label in extra)]
    if not handles:
        return
    if where == "below":
        container.legend(handles, labels, loc="outside lower center", fontsize=fontsize, ncol=ncol)
    else:
        ncol = 1 if len(handles) <= 20 else 2
        ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize=fontsize,
            ncol=ncol,
        )


def _plain_log_labels(ax: Any) -> None:
    """A log y axis labelled 0.5, 2, 30 rather than 5 x 10^-1; over two decades or less its
    minor ticks at 2 and 5 are labelled too."""
    import math

    def major(y: float, _: Any) -> str:
        return f"{y:g}"

    def minor(y: float, _: Any) -> str:
        low, high = ax.get_ylim()
        if low <= 0 or math.log10(high / low) > 2:
            return ""
        digit = round(y / 10 ** math.floor(math.log10(y) + 1e-9))
        return f"{y:g}" if digit in (2, 3, 5) else ""

    ax.yaxis.set_major_formatter(major)
    ax.yaxis.set_minor_formatter(minor)


def loss_curves(
    curves: pd.DataFrame,
    task: str,
    meta: TaskMeta | None = None,
    colours: dict[str, str] | None = None,
) -> Any:
    """Train (dashed) and validation (solid) loss per epoch, one colour per model, seed mean;
    the test loss of the baselines and the best achievable as references (validation is drawn
    from the same generator)."""
    data = curves[curves["task"] == task]
    if data.empty:
        return None
    colours = colours or model_colours(data["model"])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    for model, group in data.groupby("model", sort=False):
        mean = group.groupby("epoch")[["train_loss", "val_loss"]].mean()
        colour = colours[model]
        ax.plot(mean.index, mean["val_loss"], color=colour, label=str(model))
        ax.plot(mean.index, mean["train_loss"], color=colour, linestyle="--")
    # one entry per model (its colour) and one per line style, not one per model and style
    ax.plot([], [], color="black", label="validation (solid)")
    ax.plot([], [], color="black", linestyle="--", label="training (dashed)")
    ax.set_yscale("log")
    losses = data[["train_loss", "val_loss"]].to_numpy().ravel()
    losses = losses[(losses > 0) & pd.notna(losses)]
    off_scale = []
    if len(losses):
        references = _references(meta, "test_loss")
        off_scale = _draw_references(ax, references, losses.min(), losses.max(), log=True)
    _plain_log_labels(ax)
    ax.set_xlabel("epoch", fontsize=FONT)
    ax.set_ylabel("loss (log scale)", fontsize=FONT)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(labelsize=FONT)
    ax.set_title(
        f"{task}: training (dashed) and validation (solid) loss per epoch", fontsize=FONT + 1
    )
    _legend_outside(fig, ax, off_scale, fontsize=FONT)
    ax.grid(alpha=0.3)
    return fig


#: The metrics drawn per model, one row each: label, and whether the whiskers are the timing
#: phase's interquartile range (speed) rather than a 95% interval over seeds.
DOT_METRICS = [
    ("test_accuracy", "test accuracy"),
    ("test_perplexity", "test perplexity"),
    ("test_loss", "test loss"),
    ("train_throughput", "training throughput"),
    ("infer_throughput", "inference throughput"),
    ("gen_tokens_per_s", "generation speed"),
]
#: Dots whose whiskers are the timing phase's interquartile range, not a 95% interval.
TIMED = {"train_throughput", "infer_throughput", "gen_tokens_per_s"}
#: A reference that would leave the models' figures less than this share of the axis (their
#: spread taken as at least ``NEAR_FLOOR`` of their size) is off the scale: annotated at the
#: axis' edge and in the legend, not drawn.
NEAR_SHARE, NEAR_FLOOR = 0.25, 0.02
#: Inches per model row and per panel around the rows.
ROW_INCHES, PANEL_INCHES = 0.34, 1.35
FONT = 9


def _whiskers(board: pd.DataFrame, metric: str) -> tuple[Any, Any] | None:
    """(below, above) of each model's figure: the quartiles of a timed figure, the 95%
    interval otherwise; ``None`` when no model has one (one seed)."""
    if metric in TIMED and f"{metric}_q1" in board:
        below = (board[metric] - board[f"{metric}_q1"]).fillna(0).clip(lower=0).to_numpy()
        above = (board[f"{metric}_q3"] - board[metric]).fillna(0).clip(lower=0).to_numpy()
        return below, above
    half = board.get(f"{metric}_ci95")
    if half is None or not half.notna().any():
        return None
    half = half.fillna(0).to_numpy()
    return half, half


def _near(value: float, low: float, high: float, log: bool) -> bool:
    if log:
        return value > 0 and low / 10 <= value <= high * 10
    spread = max(high - low, NEAR_FLOOR * max(abs(low), abs(high)), 1e-12)
    return spread / (max(high, value) - min(low, value) or spread) >= NEAR_SHARE


def _vertical_references(
    ax: Any, references: list[tuple[str, float, Any, Any]], low: float, high: float, log: bool
) -> tuple[list[float], list[tuple[Any, str]]]:
    """A vertical line for each reference near the models' figures; one far off is listed in
    the legend with an arrow and written at the axis' edge, so it neither squashes the models'
    scale nor goes unsaid. Returns the drawn values and the off-scale legend entries."""
    from matplotlib.lines import Line2D

    drawn, off_scale, edge = [], [], {"left": [], "right": []}
    for name, value, colour, style in references:
        if _near(value, low, high, log):
            ax.axvline(value, color=colour, linestyle=style, label=f"{name} ({value:.4g})")
            drawn.append(value)
            continue
        side = "right" if value > high else "left"
        arrow = r"$\rightarrow$" if side == "right" else r"$\leftarrow$"
        handle = Line2D([], [], color=colour, marker=arrow, markersize=8, linestyle="none")
        off_scale.append((handle, f"{name}: {value:.4g} (off scale, {side})"))
        edge[side].append(f"{name} {value:.4g}")
    if edge["left"] or edge["right"]:  # under the tick labels, where it covers nothing
        text = ", ".join(
            [*(f"\u2190 {t}" for t in edge["left"]), *(f"{t} \u2192" for t in edge["right"])]
        )
        ax.set_xlabel(f"off scale: {text}", fontsize=FONT - 1, color="dimgrey")
    return drawn, off_scale


def metric_dots(
    board: pd.DataFrame, task: str, meta: TaskMeta, colours: dict[str, str] | None = None
) -> Any:
    """Test accuracy, perplexity (where they apply), loss and speed per model, one metric per
    row: a dot per model with its 95% interval (speed: its interquartile range), models in
    leaderboard order from the top, the axis fitted to the figures rather than starting at 0
    so a small difference shows; baselines and the best achievable as vertical lines, or, far
    off the scale, named at the axis' edge and in the legend."""
    if board.empty:
        return None
    colours = colours or model_colours(board["model"])
    shown = [(m, label) for m, label in DOT_METRICS if m in board and board[m].notna().any()]
    if not shown:
        return None
    import numpy as np

    plt = _pyplot()
    rows = len(board)
    heights = [ROW_INCHES * rows + PANEL_INCHES for _ in shown]
    fig = plt.figure(figsize=(9, sum(heights)), layout="constrained")
    panels = fig.subfigures(len(shown), 1, height_ratios=heights, squeeze=False)[:, 0]
    unit = "tokens/s" if meta.input_kind == "tokens" else "steps/s"
    y = np.arange(rows)[::-1]  # the leaderboard's first model at the top
    for panel, (metric, title) in zip(panels, shown):
        ax = panel.subplots()
        values = board[metric].astype(float)
        whiskers = _whiskers(board, metric)
        for i, model in enumerate(board["model"]):
            if pd.isna(values.iat[i]):
                continue
            xerr = None if whiskers is None else [[whiskers[0][i]], [whiskers[1][i]]]
            ax.errorbar(
                values.iat[i], y[i], xerr=xerr, fmt="o", color=colours.get(model, "grey"),
                markersize=7, capsize=4, elinewidth=1.6,
            )  # fmt: skip
        finite = values.dropna()
        below, above = (0, 0) if whiskers is None else whiskers
        low = float((values - below).min())
        high = float((values + above).max())
        # log only when the figures span a decade and every interval stays above 0
        log = metric in ("test_loss", "test_perplexity") and low > 0 and bool((finite > 0).all())
        log = log and finite.max() / finite.min() > 10
        references = _references(meta, metric) if metric not in TIMED else []
        drawn, off_scale = _vertical_references(ax, references, low, high, log)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")
        else:
            left, right = min([low, *drawn]), max([high, *drawn])
            pad = max(right - left, NEAR_FLOOR * max(abs(left), abs(right)), 1e-9) * 0.08
            ax.set_xlim(left - pad, right + pad)
        ax.set_yticks(y, [str(m) for m in board["model"]], fontsize=FONT)
        ax.set_ylim(-0.7, rows - 0.3)
        ax.tick_params(axis="x", labelsize=FONT)
        ax.grid(axis="x", alpha=0.3)
        if metric in TIMED:  # 1,350,000 rather than 1.35 and a "1e6" in the corner
            ax.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
        if metric in TIMED:
            what = f"{title} ({unit}, higher is faster): median and interquartile range"
        else:
            direction = higher_is_better_label(metric, meta)
            spread = "mean and 95% interval" if whiskers is not None else "one seed, no interval"
            what = f"{title}{direction}: {spread}"
            if meta.input_kind == "values" and metric == "test_accuracy":
                what = what.replace("test accuracy", "test accuracy within tolerance")
        ax.set_title(what, loc="left", fontsize=FONT + 1)
        # below the axis, so every row's axis has the figure's whole width
        _legend_outside(panel, ax, off_scale, where="below", fontsize=FONT - 1, ncol=3)
    fig.suptitle(f"{task}: test metrics and speed per model", fontsize=FONT + 2)
    return fig


def higher_is_better_label(metric: str, meta: TaskMeta) -> str:
    """`` (higher is better)`` / `` (lower is better)`` for a test metric, '' when unknown."""
    if metric == meta.primary_metric:
        return f" ({meta.direction} is better)"
    kind = metric.partition("_")[2]
    direction = {"loss": "lower", "perplexity": "lower", "accuracy": "higher"}.get(kind)
    return f" ({direction} is better)" if direction else ""


def to_svg(fig: Any) -> str:
    """``fig`` as an inline ``<svg>`` element (text kept as text, which keeps it small)."""
    import io

    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def save_png(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    close(fig)
    return path


def close(fig: Any) -> None:
    _pyplot().close(fig)


def predictions(
    records: list[dict[str, Any]], task: str, colours: dict[str, str] | None = None
) -> Any:
    """For value tasks that return samples: truth vs teacher-forced and rollout predictions."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in records:
        samples = record.get("samples") or {}
        if record["task"] == task and "truth" in samples and record["model"] not in chosen:
            chosen[record["model"]] = samples
    if not chosen:
        return None
    colours = colours or model_colours(chosen)
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(chosen),
        1,
        figsize=(10.5, 2.4 * len(chosen)),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (model, samples) in zip(axes[:, 0], chosen.items()):
        truth = samples["truth"]
        steps = range(len(truth))
        ax.plot(steps, truth, color="black", linewidth=2, label="truth")
        teacher = samples.get("teacher_forced")
        if teacher:
            ax.plot(
                range(1, 1 + len(teacher)),
                teacher,
                color=colours.get(model, "C0"),
                linestyle="--",
                label="teacher-forced",
            )
        rollout = samples.get("rollout")
        if rollout:
            warm = samples.get("warmup", len(truth) - len(rollout))
            ax.plot(
                range(warm, warm + len(rollout)),
                rollout,
                color=colours.get(model, "C3"),
                linewidth=1.5,
                label="rollout",
            )
            ax.axvline(warm - 0.5, color="grey", linestyle=":", label="end of warm-up")
        ax.set_ylabel(model, color=colours.get(model, "black"), fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
        if ax is axes[0, 0]:  # the same four lines in every row: one legend
            _legend_outside(fig, ax, fontsize=FONT)
    axes[-1, 0].set_xlabel("step", fontsize=FONT)
    fig.suptitle(f"{task}: one test curve, truth vs teacher-forced and rollout predictions")
    return fig
