"""Plots from a saved pytest-benchmark JSON (``--benchmark-autosave`` or ``--benchmark-json``).

The benchmarks in ``benchmarks/`` describe each figure in ``extra_info`` (``kind``: ``pair``,
``sweep`` or ``overhead``, with task, model, phase, timesteps, hidden size), so the plots are
drawn from those fields, not parsed out of test names. Benchmarks without them still get a
plain bar chart per group. Times are medians with the interquartile range as error bars: the
median and IQR resist the outliers a busy machine produces, where mean and stddev do not.

Usage: ``python -m harness.benchplot RUN.json --out DIR`` (or ``harness bench-plot``).
torch is never imported here, and matplotlib only when plotting.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

SWEEP_AXES = {"length": ("timesteps", "sequence length"), "hidden": ("hidden_size", "hidden size")}


class BenchmarkFileError(HarnessError, ValueError):
    """The file is not a saved pytest-benchmark run with timings (one line on the CLI)."""


def load_benchmarks(json_path: str | Path) -> list[dict[str, Any]]:
    """The timed benchmarks of a saved run; anything else raises :class:`BenchmarkFileError`."""
    path = Path(json_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkFileError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BenchmarkFileError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BenchmarkFileError(f"{path} is not a pytest-benchmark JSON (no 'benchmarks' list)")
    timed = [b for b in data["benchmarks"] if isinstance(b, dict) and b.get("stats")]
    if not timed:
        raise BenchmarkFileError(f"{path} holds no timed benchmarks to plot")
    for bench in timed:
        name = bench.get("fullname") or bench.get("name")
        stats, info = bench["stats"], bench.get("extra_info") or {}
        if not isinstance(stats, dict) or not _is_number(stats.get("median")):
            raise BenchmarkFileError(f"{path}: benchmark {name!r} has no median time")
        if not isinstance(info, dict):
            raise BenchmarkFileError(f"{path}: benchmark {name!r}: extra_info is not an object")
        if info.get("kind") == "sweep" and info.get("sweep") in SWEEP_AXES:
            field = SWEEP_AXES[info["sweep"]][0]
            if not _is_number(info.get(field)):
                raise BenchmarkFileError(
                    f"{path}: sweep benchmark {name!r} has no numeric {field!r} in extra_info"
                )
    return timed


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_benchmarks(json_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write PNG plots for a saved run into ``out_dir``; returns the files written.

    Raises :class:`BenchmarkFileError` (a ``ValueError``) for a file that is not a saved run.

    Sweep benchmarks give time vs sequence length and vs hidden size (log-log, one line per
    model); task x model benchmarks give bars per model, one panel per task, one figure per
    phase; anything else gives one bar chart per benchmark group.
    """
    import matplotlib

    matplotlib.use("Agg")

    benchmarks = load_benchmarks(json_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in benchmarks:
        by_kind[(bench.get("extra_info") or {}).get("kind", "other")].append(bench)

    written: list[Path] = []
    for sweep, (field, label) in SWEEP_AXES.items():
        points = [b for b in by_kind["sweep"] if b["extra_info"].get("sweep") == sweep]
        if points:
            written.append(_plot_sweep(points, field, label, out / f"sweep-{sweep}.png"))
    pairs = by_kind["pair"]
    for phase in sorted({b["extra_info"].get("phase", "train") for b in pairs}):
        chosen = [b for b in pairs if b["extra_info"].get("phase", "train") == phase]
        written.append(_plot_pairs(chosen, phase, out / f"tasks-{phase}.png"))
    rest = [b for kind, group in by_kind.items() if kind not in ("sweep", "pair") for b in group]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in rest:
        groups[bench.get("group") or "ungrouped"].append(bench)
    for group, members in sorted(groups.items()):
        written.append(_plot_group(group, members, out / f"group-{_slug(group)}.png"))
    return written


def _median_and_iqr(bench: dict[str, Any]) -> tuple[float, float, float]:
    """Median and its distance to the first and third quartiles, in seconds."""
    stats = bench["stats"]
    median = stats["median"]
    q1, q3 = stats.get("q1", median), stats.get("q3", median)
    return median, max(median - q1, 0.0), max(q3 - median, 0.0)


def _scale(seconds: list[float]) -> tuple[float, str]:
    """A readable time unit for a set of values: s, ms or us."""
    top = max(seconds, default=1.0)
    if top >= 1.0:
        return 1.0, "s"
    if top >= 1e-3:
        return 1e3, "ms"
    return 1e6, "us"


def _caption(benchmarks: list[dict[str, Any]]) -> str:
    """Device, threads and torch version, so a figure carries what produced it."""
    info = benchmarks[0].get("extra_info") or {}
    parts = [
        info.get("device_name") or info.get("device"),
        f"torch threads {info['torch_threads']}" if "torch_threads" in info else None,
        f"torch {info['torch_version']}" if "torch_version" in info else None,
        "median, IQR bars",
    ]
    return ", ".join(p for p in parts if p)


def _plot_sweep(points: list[dict[str, Any]], field: str, label: str, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    lines: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for bench in points:
        info = bench["extra_info"]
        lines[info.get("model", bench["name"])].append((info[field], *_median_and_iqr(bench)))
    fixed = {"timesteps": "hidden_size", "hidden_size": "timesteps"}[field]
    fixed_values = sorted({b["extra_info"].get(fixed) for b in points}, key=str)
    fig, ax = plt.subplots(figsize=(8.5, 5))
    for model, rows in sorted(lines.items()):
        rows.sort()
        xs = [r[0] for r in rows]
        ys = [r[1] * 1e3 for r in rows]
        err = [[r[2] * 1e3 for r in rows], [r[3] * 1e3 for r in rows]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=model)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted({row[0] for rows in lines.values() for row in rows}))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)
    ax.set_ylabel("training step, median (ms)")
    fixed_text = ", ".join(str(v) for v in fixed_values)
    ax.set_title(f"training step vs {label} ({fixed.replace('_', ' ')} {fixed_text})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lines, never over them
    fig.text(0.01, 0.01, _caption(points), fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_pairs(benchmarks: list[dict[str, Any]], phase: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in benchmarks:
        tasks[bench["extra_info"].get("task", bench.get("group") or "?")].append(bench)
    names = sorted(tasks)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.5), squeeze=False)
    for ax, task in zip(axes[0], names):
        members = sorted(tasks[task], key=lambda b: b["extra_info"].get("model", b["name"]))
        factor, unit = _scale([b["stats"]["median"] for b in members])
        stats = [_median_and_iqr(b) for b in members]
        ax.bar(
            range(len(members)),
            [s[0] * factor for s in stats],
            yerr=[[s[1] * factor for s in stats], [s[2] * factor for s in stats]],
            capsize=3,
            color="tab:blue" if phase == "train" else "tab:orange",
        )
        ax.set_xticks(range(len(members)))
        labels = [b["extra_info"].get("model", b["name"]) for b in members]
        ax.set_xticklabels(labels, rotation=35, ha="right")
        info = members[0]["extra_info"]
        ax.set_title(f"{task} (batch {info.get('batch_size')}, {info.get('timesteps')} steps)")
        ax.set_ylabel(f"{phase} step, median ({unit})")
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{phase} step per model, grouped by task")
    fig.text(0.01, 0.01, _caption(benchmarks), fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_group(group: str, members: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    members = sorted(members, key=lambda b: b["name"])
    factor, unit = _scale([b["stats"]["median"] for b in members])
    stats = [_median_and_iqr(b) for b in members]
    labels = [
        (b.get("extra_info") or {}).get("variant") or b.get("param") or b["name"] for b in members
    ]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(members)))
    ax.barh(
        range(len(members)),
        [s[0] * factor for s in stats],
        xerr=[[s[1] * factor for s in stats], [s[2] * factor for s in stats]],
        capsize=3,
    )
    ax.set_yticks(range(len(members)))
    ax.set_yticklabels([str(label) for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel(f"median ({unit})")
    ax.set_title(group, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.text(0.01, 0.01, _caption(members), fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "group"
