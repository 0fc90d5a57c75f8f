"""Two runs side by side: quality and speed change per model and per cell, and what regressed.

A change is flagged only where the statistics say so *and* it is large enough to matter: the
95% interval of the difference of the seed means (Welch) must exclude zero, and the relative
change must pass a threshold. With one seed there is no interval, so nothing is flagged on
quality (the table says so); a cell that finished in A but failed or diverged in B is always a
regression.

Speed is timed once per task x model pair (its seeds share the figure), so it is judged once
per pair. Absolute figures taken at different moments differ with the machine (a shared box
drifts 1.5-2.5x), so where both runs have them, speed is judged by each pair's ratio to its
task's reference pair, timed side by side in interleaved rounds (``*_speed_vs_ref``): the
change of a pair's ratio from A to B, divided by the median change over the task's pairs (so a
slower reference, which moves every other ratio the same way, shows as the reference's own
change). Flagged when that change passes the threshold and the quartile ranges of the ratios
do not overlap. Runs without ratios fall back to the absolute figures' quartiles.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.report.formatting import format_value, one_notation
from harness.report.run import LoadedRun, unit_name
from harness.storage.escape import md_code, md_table, md_text
from harness.storage.status import BROKEN, OK

#: Speed columns compared (higher is faster), with how the tables label them.
SPEED = {
    "train_throughput": "train speed",
    "infer_throughput": "inference speed",
    "gen_tokens_per_s": "generation speed",
}
#: The ratio to the task's reference pair that judges each speed column where both runs have it.
RELATIVE = {
    "train_throughput": "train_speed_vs_ref",
    "infer_throughput": "infer_speed_vs_ref",
    "gen_tokens_per_s": "gen_speed_vs_ref",
}
FINISHED = OK
KEY = ["task", "model", "seed"]


@dataclass
class Comparison:
    """The result of :func:`compare`: tables of strings ready to print, and the regressions."""

    a: str
    b: str
    settings: pd.DataFrame
    models: pd.DataFrame
    speed: pd.DataFrame
    cells: pd.DataFrame
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def sections(self) -> list[tuple[str, pd.DataFrame]]:
        """The tables in reading order, each with its title (empty ones left out)."""
        parts = [
            ("settings that differ", self.settings),
            ("quality per model (test primary metric, mean ± 95% CI over seeds)", self.models),
            ("speed per model (mean over seeds; ratio B / A)", self.speed),
            ("cell by cell", self.cells),
        ]
        return [(title, frame) for title, frame in parts if not frame.empty]

    def markdown(self) -> str:
        """The comparison as markdown; plugin text (names, errors, settings) escaped."""
        lines = ["# Comparison", "", f"- A: {md_code(self.a)}", f"- B: {md_code(self.b)}", ""]
        for title, frame in self.sections():
            lines += [f"## {title}", "", md_table(frame), ""]
        if self.added:
            lines += ["## cells only in B", "", *[f"- {md_text(c)}" for c in self.added], ""]
        if self.removed:
            lines += ["## cells only in A", "", *[f"- {md_text(c)}" for c in self.removed], ""]
        lines += ["## verdict", "", *[f"- {n}" for n in self.notes]]
        regressions = [f"- regression: {md_text(r)}" for r in self.regressions]
        lines += regressions or ["- no regression"]
        return "\n".join(lines) + "\n"


def welch(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Difference of means (b - a) and the half-width of its 95% Welch interval (NaN if n < 2)."""
    from scipy import stats

    a, b = a.dropna().astype(float), b.dropna().astype(float)
    if a.empty or b.empty:
        return math.nan, math.nan
    diff = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return diff, float(stats.t.ppf(0.975, dof) * se)


def verdict(diff: float, half: float, base: float, threshold: float, up_is_good: bool) -> str:
    """'better', 'worse', 'same' (within noise or below the threshold) or 'no interval'."""
    if math.isnan(diff):
        return "missing"
    if math.isnan(half):
        return "no interval"
    relative = abs(diff) / abs(base) if base else math.inf
    if abs(diff) <= half or relative < threshold:
        return "same"
    return "better" if (diff > 0) == up_is_good else "worse"


def _relative(diff: float, base: float) -> str:
    if math.isnan(diff) or not base or math.isnan(base):
        return ""
    return f"{100 * diff / abs(base):+.1f}%"


def compare(
    a: LoadedRun, b: LoadedRun, threshold: float = 0.01, speed_threshold: float = 0.10
) -> Comparison:
    """Compare run ``b`` against run ``a`` (the baseline); with a sweep, variant by variant
    (each variant of a task compared as a task of its own, ``mqar [hidden_size=32]``)."""
    ca, cb = _by_unit(a.cells), _by_unit(b.cells)
    keys_a = set(map(tuple, ca[KEY].itertuples(index=False)))
    keys_b = set(map(tuple, cb[KEY].itertuples(index=False)))
    label = "{} × {} seed {}".format
    result = Comparison(
        a=str(a.folder.path),
        b=str(b.folder.path),
        settings=_settings(a.info, b.info),
        models=pd.DataFrame(),
        speed=pd.DataFrame(),
        cells=pd.DataFrame(),
        added=[label(*k) for k in sorted(keys_b - keys_a)],
        removed=[label(*k) for k in sorted(keys_a - keys_b)],
    )
    metas = {unit_name(t, v): m for run in (a, b) for t, v, m in run.units}
    quality_rows, speed_rows, cell_rows = [], [], []
    no_interval = relative_used = False
    for task, meta in metas.items():
        metric, up = meta.primary_metric, meta.higher_is_better
        ok_a = ca[(ca["task"] == task) & (ca["status"] == FINISHED)]
        ok_b = cb[(cb["task"] == task) & (cb["status"] == FINISHED)]
        models = list(dict.fromkeys([*ok_a["model"], *ok_b["model"]]))
        speeds = task_speeds(ok_a, ok_b, models, speed_threshold)
        relative_used |= any(j[3].startswith("ratio") for v in speeds.values() for j in v.values())
        for model in models:
            va = _numbers(ok_a[ok_a["model"] == model], metric)
            vb = _numbers(ok_b[ok_b["model"] == model], metric)
            diff, half = welch(va, vb)
            base = float(va.mean()) if not va.empty else math.nan
            said = verdict(diff, half, base, threshold, up)
            if va.empty != vb.empty:
                said = "only in A" if vb.empty else "only in B"
            no_interval |= said == "no interval"
            if said == "worse":
                result.regressions.append(
                    f"{task} × {model}: {metric} {format_value(base)} -> "
                    f"{format_value(float(vb.mean()))}"
                )
            quality_rows.append(
                {
                    "task": task,
                    "model": model,
                    "metric": f"{metric} ({meta.direction} is better)",
                    "A": _mean_ci(va),
                    "B": _mean_ci(vb),
                    "change": format_value(diff, half),
                    "relative": _relative(diff, base),
                    "verdict": said,
                }
            )
            row: dict[str, Any] = {"task": task, "model": model}
            for name, judged in speeds.get(model, {}).items():
                sa, sb, ssaid, how = judged
                if ssaid == "slower":
                    result.regressions.append(
                        f"{task} × {model}: {name} {format_value(sa, whole=True)} -> "
                        f"{format_value(sb, whole=True)} ({how})"
                    )
                row[f"{name} A"] = format_value(sa, whole=True)
                row[f"{name} B"] = format_value(sb, whole=True)
                row[f"{name} ratio"] = _ratio(sa, sb)
                row[f"{name} verdict"] = ssaid
            speed_rows.append(row)
        cell_rows += _cell_rows(ca, cb, task, metric, up, speeds, result)
    result.models = one_notation(pd.DataFrame(quality_rows))
    result.speed = one_notation(pd.DataFrame(speed_rows).astype(object).fillna(""))
    result.cells = one_notation(pd.DataFrame(cell_rows).astype(object).fillna(""))
    if no_interval:
        result.notes.append(
            "'no interval': one seed in A or B, so no change is flagged on quality; "
            "run both with --seeds 3 or more to compare with intervals"
        )
    result.notes.append(
        f"flagged only when the 95% interval of the change excludes zero and the change is at "
        f"least {threshold:.0%} (quality) or {speed_threshold:.0%} (speed)"
    )
    if relative_used:
        result.notes.append(
            "speed judged by each pair's ratio to its task's reference pair (timed side by "
            "side), relative to the median change of the task's pairs; the absolute figures "
            "are shown beside it"
        )
    for run, name in ((a, "A"), (b, "B")):
        timing = run.info.get("timing") or {}
        if timing.get("unstable"):
            result.notes.append(f"{name}'s speed figures are unstable: {timing['unstable_reason']}")
    return result


def _by_unit(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with ``task`` naming the task's variant where the run is a sweep."""
    cells = cells.copy()
    if "variant" in cells:
        variants = cells["variant"].astype(object).where(cells["variant"].notna(), "")
        cells["task"] = [unit_name(t, str(v)) for t, v in zip(cells["task"], variants)]
    return cells


def task_speeds(
    ok_a: pd.DataFrame, ok_b: pd.DataFrame, models: list[str], threshold: float
) -> dict[str, dict[str, tuple[float, float, str, str]]]:
    """Each model's speed verdicts on a task: label -> (A's figure, B's figure, verdict, how
    it was judged). By ratios to the reference where both runs have them for a column, else
    by the absolute figures' quartiles."""
    judged: dict[str, dict[str, tuple[float, float, str, str]]] = {m: {} for m in models}
    for column, name in SPEED.items():
        ratio_column = RELATIVE[column]
        ratios = {
            m: (
                _pair_speed(ok_a[ok_a["model"] == m], ratio_column),
                _pair_speed(ok_b[ok_b["model"] == m], ratio_column),
            )
            for m in models
        }
        changes = [rb[0] / ra[0] for ra, rb in ratios.values() if _finite(ra[0], rb[0])]
        norm = statistics.median(changes) if changes else math.nan
        for model in models:
            sa, *spread_a = _pair_speed(ok_a[ok_a["model"] == model], column)
            sb, *spread_b = _pair_speed(ok_b[ok_b["model"] == model], column)
            if math.isnan(sa) and math.isnan(sb):
                continue
            ra, rb = ratios[model]
            if _finite(ra[0], rb[0], norm) and norm > 0:
                said = speed_verdict(ra[0], rb[0] / norm, (ra[1], ra[2], rb[1] / norm,
                                     rb[2] / norm), threshold)  # fmt: skip
                how = (
                    f"ratio to {_reference(ok_b, model)} {ra[0]:.2f} -> {rb[0]:.2f}, "
                    f"{rb[0] / ra[0] / norm:.2f}x after the task's median change {norm:.2f}"
                )
            else:
                said = speed_verdict(sa, sb, (*spread_a, *spread_b), threshold)
                how = "timing quartiles do not overlap"
            judged[model][name] = (sa, sb, said, how)
    return judged


def _finite(*values: float) -> bool:
    return all(not math.isnan(v) and not math.isinf(v) for v in values)


def _reference(frame: pd.DataFrame, model: str) -> str:
    rows = frame[frame["model"] == model]
    if "speed_reference" in rows and not rows["speed_reference"].dropna().empty:
        return str(rows["speed_reference"].dropna().iloc[0])
    return "the reference"


def _cell_rows(
    ca: pd.DataFrame,
    cb: pd.DataFrame,
    task: str,
    metric: str,
    up: bool,
    speeds: dict[str, dict[str, tuple[float, float, str, str]]],
    result: Comparison,
) -> list[dict[str, Any]]:
    rows = []
    both = ca[ca["task"] == task].merge(cb[cb["task"] == task], on=KEY, suffixes=("_a", "_b"))
    for _, cell in both.iterrows():
        status_a, status_b = cell["status_a"], cell["status_b"]
        name = f"{task} × {cell['model']} seed {cell['seed']}"
        if status_a == FINISHED and status_b in BROKEN:
            error = str(cell.get("error_b") or "")[:120]
            result.regressions.append(f"{name}: {status_a} -> {status_b} ({error})")
        va, vb = _number(cell.get(f"{metric}_a")), _number(cell.get(f"{metric}_b"))
        row = {
            "task": task,
            "model": cell["model"],
            "seed": cell["seed"],
            "status": status_a if status_a == status_b else f"{status_a} -> {status_b}",
            f"{metric} A": format_value(va),
            f"{metric} B": format_value(vb),
            "change": _relative(vb - va, va),
        }
        for label, (sa, sb, said, _) in speeds.get(cell["model"], {}).items():
            tag = f" {said}" if said in ("slower", "faster") else ""  # the pair's verdict
            row[f"{label} ratio"] = _ratio(sa, sb) + tag
        rows.append(row)
    return rows


#: Settings that say where a run went, not what it measured.
NOT_SETTINGS = {"out", "resume", "results_dir"}


def _settings(a: dict[str, Any], b: dict[str, Any]) -> pd.DataFrame:
    """The settings and environment entries whose values differ between the two run.json."""
    rows = []
    for section in ("config", "resolved", "environment"):
        sa, sb = a.get(section) or {}, b.get(section) or {}
        for key in dict.fromkeys([*sa, *sb]):
            if key not in NOT_SETTINGS and sa.get(key) != sb.get(key):
                rows.append({"setting": f"{section}.{key}", "A": str(sa.get(key)),
                             "B": str(sb.get(key))})  # fmt: skip
    return pd.DataFrame(rows)


def speed_verdict(a: float, b: float, spread: Sequence[float], threshold: float) -> str:
    """'slower', 'faster' or 'same' for a pair's timed speed (median ``a`` -> ``b``, with
    ``spread`` = A's q1, q3, B's q1, q3): a change counts when the interquartile ranges do
    not overlap and it is at least ``threshold``; 'no spread' without quartiles."""
    if math.isnan(a) or math.isnan(b):
        return "missing"
    if any(math.isnan(v) for v in spread):
        return "no spread"
    a_q1, a_q3, b_q1, b_q3 = spread
    if b_q3 < a_q1 and b <= (1 - threshold) * a:
        return "slower"
    if b_q1 > a_q3 and b >= (1 + threshold) * a:
        return "faster"
    return "same"


def _pair_speed(frame: pd.DataFrame, column: str) -> tuple[float, float, float]:
    """A pair's timed median and quartiles (every seed's record carries the same ones)."""
    values = [_numbers(frame, c) for c in (column, f"{column}_q1", f"{column}_q3")]
    return tuple(float(v.iloc[0]) if not v.empty else math.nan for v in values)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").dropna()


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _mean_ci(values: pd.Series) -> str:
    from harness.report.ranking import interval

    mean, half, n = interval(values)
    return f"{format_value(mean, half)} (n={n})" if n else ""


def _ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or not a:
        return ""
    return f"{b / a:.2f}×"
