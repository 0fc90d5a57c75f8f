"""matplotlib figures, one set per task: loss curves, metric bars, and sample predictions.

Each function returns a figure (or ``None`` when there is nothing to draw); the caller saves
it where the run folder says, as PNG or SVG, and closes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.meta import TaskMeta


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(curves: pd.DataFrame, task: str) -> Any:
    """Train (dashed) and held-out (solid) loss per epoch, one colour per model, seed mean."""
    data = curves[curves["task"] == task]
    if data.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (model, group) in enumerate(data.groupby("model", sort=False)):
        mean = group.groupby("epoch")[["train_loss", "test_loss"]].mean()
        colour = f"C{i % 10}"
        ax.plot(mean.index, mean["test_loss"], color=colour, label=f"{model} held-out")
        ax.plot(
            mean.index, mean["train_loss"], color=colour, linestyle="--", label=f"{model} train"
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(f"{task}: training (dashed) and held-out (solid) loss per epoch")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


BAR_METRICS = [
    ("test_accuracy", "held-out accuracy"),
    ("test_perplexity", "held-out perplexity"),
    ("test_loss", "held-out loss"),
    ("train_throughput", "training throughput (steps/s)"),
]


def metric_bars(board: pd.DataFrame, task: str, meta: TaskMeta) -> Any:
    """Bars of held-out accuracy, perplexity (where they apply), loss and speed per model."""
    if board.empty:
        return None
    shown = [(m, label) for m, label in BAR_METRICS if m in board and board[m].notna().any()]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.2))
    axes = list(axes) if len(shown) > 1 else [axes]
    for ax, (metric, title) in zip(axes, shown):
        errors = board.get(f"{metric}_ci95")
        if errors is not None and errors.notna().any():  # no bars at all with one seed
            errors = errors.fillna(0).to_numpy()
        else:
            errors = None
        ax.bar(board["model"], board[metric], yerr=errors, color="C0", capsize=3)
        references = []
        if metric in meta.optimum:
            references.append(("best achievable", meta.optimum[metric], "C2", "--"))
        for j, baseline in enumerate(meta.baselines):
            if metric in baseline.metrics:
                name = f"baseline: {baseline.name}"
                references.append((name, baseline.metrics[metric], f"C{3 + j}", ":"))
        values = board[metric]
        # log only when values span a decade; perplexities all near 1 read better linear
        log = metric in ("test_loss", "test_perplexity") and (values > 0).all()
        log = log and values.max() / values.min() > 10
        for name, value, colour, style in references:
            if log and value <= 0:
                continue  # a log axis cannot draw it
            ax.axhline(value, color=colour, linestyle=style, label=f"{name} ({value:.4g})")
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    unit = "tokens/s" if meta.input_kind == "tokens" else "steps/s"
    if meta.input_kind == "values" and "test_accuracy" in dict(shown):
        axes[0].set_title("held-out accuracy (within the task's tolerance)")
    axes[-1].set_title(f"training throughput ({unit})")
    fig.suptitle(f"{task}: held-out metrics and speed per model (mean, 95% CI over seeds)")
    fig.tight_layout()
    return fig


def save_png(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def predictions(records: list[dict[str, Any]], task: str) -> Any:
    """For value tasks that return samples: truth vs teacher-forced and rollout predictions."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in records:
        samples = record.get("samples") or {}
        if record["task"] == task and "truth" in samples and record["model"] not in chosen:
            chosen[record["model"]] = samples
    if not chosen:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(chosen), 1, figsize=(9, 2.4 * len(chosen)), sharex=True, squeeze=False
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
                color="C0",
                linestyle="--",
                label="teacher-forced",
            )
        rollout = samples.get("rollout")
        if rollout:
            warm = samples.get("warmup", len(truth) - len(rollout))
            ax.plot(range(warm, warm + len(rollout)), rollout, color="C3", label="rollout")
            ax.axvline(warm - 0.5, color="grey", linestyle=":", label="end of warm-up")
        ax.set_ylabel(model)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{task}: one held-out curve, truth vs teacher-forced and rollout predictions")
    fig.tight_layout()
    return fig
