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


#: Reference lines: greys and dash patterns, never a model's colour.
REFERENCE_STYLES = [("black", "--"), ("dimgrey", ":"), ("grey", "-."), ("darkgrey", (0, (5, 2)))]


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
    container: Any, ax: Any, extra: Sequence[tuple[Any, str]] = (), where: str = "right"
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
        container.legend(handles, labels, loc="outside lower center", fontsize=7)
    else:
        ncol = 1 if len(handles) <= 20 else 2
        ax.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, ncol=ncol
        )


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
        ax.plot(mean.index, mean["val_loss"], color=colour, label=f"{model} validation")
        ax.plot(
            mean.index, mean["train_loss"], color=colour, linestyle="--", label=f"{model} train"
        )
    ax.set_yscale("log")
    losses = data[["train_loss", "val_loss"]].to_numpy().ravel()
    losses = losses[(losses > 0) & pd.notna(losses)]
    off_scale = []
    if len(losses):
        references = _references(meta, "test_loss")
        off_scale = _draw_references(ax, references, losses.min(), losses.max(), log=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(f"{task}: training (dashed) and validation (solid) loss per epoch")
    _legend_outside(fig, ax, off_scale)
    ax.grid(alpha=0.3)
    return fig


BAR_METRICS = [
    ("test_accuracy", "test accuracy"),
    ("test_perplexity", "test perplexity"),
    ("test_loss", "test loss"),
    ("train_throughput", "training throughput"),
    ("infer_throughput", "inference throughput"),
]
#: Bars whose error bars are the timing phase's interquartile range, not a 95% interval.
TIMED = {"train_throughput", "infer_throughput"}


def metric_bars(
    board: pd.DataFrame, task: str, meta: TaskMeta, colours: dict[str, str] | None = None
) -> Any:
    """Bars of test accuracy, perplexity (where they apply), loss and speed per model."""
    if board.empty:
        return None
    colours = colours or model_colours(board["model"])
    shown = [(m, label) for m, label in BAR_METRICS if m in board and board[m].notna().any()]
    if not shown:
        return None
    plt = _pyplot()
    fig = plt.figure(figsize=(4.2 * len(shown), 5.2), layout="constrained")
    # a subfigure per panel, so each panel's legend sits at its own foot, below the tick labels
    panels = fig.subfigures(1, len(shown), squeeze=False)[0]
    axes = [panel.subplots() for panel in panels]
    for panel, ax, (metric, title) in zip(panels, axes, shown):
        errors = board.get(f"{metric}_ci95")
        if metric in TIMED and f"{metric}_q1" in board:  # asymmetric: the quartiles
            errors = [
                (board[metric] - board[f"{metric}_q1"]).fillna(0).to_numpy(),
                (board[f"{metric}_q3"] - board[metric]).fillna(0).to_numpy(),
            ]
        elif errors is not None and errors.notna().any():  # no bars at all with one seed
            errors = errors.fillna(0).to_numpy()
        else:
            errors = None
        bar_colours = [colours.get(model, "grey") for model in board["model"]]
        ax.bar(board["model"], board[metric], yerr=errors, color=bar_colours, capsize=3)
        values = board[metric]
        # log only when values span a decade; perplexities all near 1 read better linear
        log = metric in ("test_loss", "test_perplexity") and (values > 0).all()
        log = log and values.max() / values.min() > 10
        below, above = (
            (0, 0) if errors is None else (errors if isinstance(errors, list) else (errors, errors))
        )
        low, high = float((values - below).min()), float((values + above).max())
        off_scale = _draw_references(ax, _references(meta, metric), low, high, log)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        _legend_outside(panel, ax, off_scale, where="below")
    unit = "tokens/s" if meta.input_kind == "tokens" else "steps/s"
    if meta.input_kind == "values" and "test_accuracy" in dict(shown):
        axes[0].set_title("test accuracy (within the task's tolerance)")
    for ax, (metric, title) in zip(axes, shown):
        if metric in TIMED:
            ax.set_title(f"{title} ({unit})\nmedian, interquartile range")
    fig.suptitle(f"{task}: test metrics (mean, 95% CI over seeds) and timed speed per model")
    return fig


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
        ax.set_ylabel(model, color=colours.get(model, "black"))
        ax.grid(alpha=0.3)
        _legend_outside(fig, ax)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{task}: one test curve, truth vs teacher-forced and rollout predictions")
    return fig
