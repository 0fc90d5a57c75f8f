"""One sentence per task that a reader can act on: the order of the models, which of them
tie or cannot be told apart, where they stand against the baselines and the best achievable,
and the caveats (one seed, unstable speed, unequal sizes, cells that diverged or failed).

The sentence reads the leaderboard (``ranking.aggregate``) and says nothing the leaderboard
does not: models that share a rank are "not separable" (their 95% intervals overlap); with one
seed there is no interval, so the order is the order of the values and the caveat says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.report.formatting import format_value, one_notation
from harness.report.meta import TaskMeta
from harness.report.ranking import SIZE_TOLERANCE, column_label, optimum_for, speed_columns
from harness.storage.status import DIVERGED, FAILED, NOT_APPLICABLE


@dataclass(frozen=True)
class Verdict:
    """A task's verdict: the sentence, then its caveats (each a short clause)."""

    task: str
    sentence: str
    caveats: list[str] = field(default_factory=list)

    @property
    def rest(self) -> str:
        """The sentence after the task's name (the report links the name to its section)."""
        return self.sentence.removeprefix(self.task)

    @property
    def text(self) -> str:
        """The sentence with its caveats, as one paragraph (the terminal, the markdown)."""
        if not self.caveats:
            return self.sentence
        return f"{self.sentence} Caveats: {'; '.join(self.caveats)}."


def _names(models: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    models = [str(m) for m in models]
    if len(models) <= 1:
        return "".join(models)
    return f"{', '.join(models[:-1])} and {models[-1]}"


def _better(a: float, b: float, higher: bool) -> bool:
    if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
        return False
    return a > b if higher else a < b


def _groups(frame: pd.DataFrame) -> list[list[int]]:
    """The leaderboard's rows in order, models of the same rank together."""
    groups: list[list[int]] = []
    for i in range(len(frame)):
        if groups and frame.at[groups[-1][0], "rank"] == frame.at[i, "rank"]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _values(frame: pd.DataFrame, metric: str, intervals: bool) -> list[str]:
    """The models' figures as the leaderboard column writes them (one notation)."""
    texts = [
        format_value(frame.at[i, metric], frame.at[i, f"{metric}_ci95"] if intervals else math.nan)
        for i in range(len(frame))
    ]
    return list(one_notation(pd.DataFrame({"v": texts}))["v"])


def _order(frame: pd.DataFrame, metric: str, intervals: bool) -> str:
    """The order clause: with intervals by shared ranks, with one seed by value."""
    models = list(frame["model"])
    values = _values(frame, metric, intervals)
    groups = _groups(frame)
    if len(models) == 1:
        return f"{models[0]} is the only model ({values[0]})"
    if len(groups) == 1:
        if not intervals:
            return f"all {len(models)} models tie ({values[0]})"
        return (
            f"none of the {len(models)} models is separable from another (their 95% "
            "intervals overlap)"
        )
    parts = []
    for number, group in enumerate(groups):
        names = _names([models[i] for i in group])
        if len(group) == 1:
            parts.append(f"{names} ({values[group[0]]})" + (" is best" if not number else ""))
        elif not intervals:
            parts.append(f"{names} tie" + (" for best" if not number else "") +
                         f" ({values[group[0]]})")  # fmt: skip
        else:
            parts.append(
                f"{names} "
                + ("share the top rank" if not number else "share a rank")
                + " (not separable)"
            )
    if intervals:
        order = ", then ".join(parts)
    else:
        order = parts[0] + (", then " + ", ".join(parts[1:]) if len(parts) > 1 else "")
    if intervals and all(len(g) == 1 for g in groups):
        return order + " (every model separable from the next)"
    return order


def _against_references(frame: pd.DataFrame, meta: TaskMeta) -> list[str]:
    """Where the models stand against the best baseline and the best achievable."""
    primary, higher = meta.primary_metric, meta.higher_is_better
    models, means = list(frame["model"]), list(frame[primary])
    finite = [(m, v) for m, v in zip(models, means) if not pd.isna(v)]
    if not finite:
        return []
    clauses = []
    realized = optimum_for(meta, primary).realized_by if primary in meta.optimum else None
    baselines = [
        (b.name, float(b.metrics[primary]))
        for b in meta.baselines
        if primary in b.metrics and not pd.isna(b.metrics[primary]) and b.name != realized
    ]
    if baselines:
        name, value = (max if higher else min)(baselines, key=lambda nv: nv[1])
        which = f"the best baseline, {name}" if len(baselines) > 1 else f"the {name} baseline"
        which += f" ({format_value(value)})"
        beating = [m for m, v in finite if _better(v, value, higher)]
        if len(beating) == len(finite):
            clauses.append(f"{'every model beats' if len(finite) > 1 else 'it beats'} {which}")
        elif not beating:
            clauses.append(f"no model beats {which}")
        elif len(beating) <= 3:
            clauses.append(f"only {_names(beating)} {'beats' if len(beating) == 1 else 'beat'} "
                           f"{which}")  # fmt: skip
        else:
            clauses.append(f"{len(beating)} of {len(finite)} models beat {which}")
    if primary in meta.optimum:
        best = optimum_for(meta, primary)
        where = format_value(best.value)
        if best.realized_by:
            where += (
                f", realized by {best.realized_by} on this test set; expected "
                f"{format_value(best.expected)}"
            )
        reached = [m for m, v in finite if not _better(best.value, v, higher)]
        if reached:
            verb = "reaches" if len(reached) == 1 else "reach"
            clauses.append(f"{_names(reached)} {verb} the best achievable ({where})")
        else:
            top, value = finite[0]
            gap = format_value(abs(value - best.value))
            side = "below" if higher else "above"
            clauses.append(f"the best, {top}, is {gap} {side} the best achievable ({where})")
    return clauses


def _caveats(
    frame: pd.DataFrame,
    meta: TaskMeta,
    cells: pd.DataFrame,
    timing: dict[str, Any],
    intervals: bool,
) -> list[str]:
    caveats = []
    if not frame.empty and not intervals:
        caveats.append(
            "one seed: ranks follow values only, no difference is shown to exceed seed noise "
            "(--seeds 3 gives intervals)"
        )
    unstable = bool(timing.get("unstable"))
    if "speed_unstable" in frame:
        unstable = unstable or bool(frame["speed_unstable"].fillna(0).astype(bool).any())
    if unstable and speed_columns(frame):
        reason = timing.get("unstable_reason") or "the machine was busy while it was timed"
        caveats.append(f"speed marked unstable ({reason}): read speed as rough")
    if "size_flagged" in frame and frame["size_flagged"].fillna(False).astype(bool).any():
        flagged = frame[frame["size_flagged"].fillna(False).astype(bool)]
        extremes = flagged.reindex(flagged["params_vs_median"].abs().sort_values().index[::-1])
        shown = [f"{r.model} {r.params_vs_median:+.0%}" for r in extremes.head(2).itertuples()]
        more = ", ..." if len(flagged) > 2 else ""
        caveats.append(
            f"{len(flagged)} of {len(frame)} models are more than {SIZE_TOLERANCE:.0%} from "
            f"the median size ({', '.join(shown)}{more}), so the order compares sizes too "
            "(--params N sizes them alike)"
        )
    for status, what in ((DIVERGED, "diverged"), (FAILED, "failed")):
        models = list(dict.fromkeys(cells.loc[cells["status"] == status, "model"]))
        if models:
            verb = "is" if len(models) == 1 else "are"
            caveats.append(f"{_names(models)} {what} and {verb} not ranked")
    skipped = list(dict.fromkeys(cells.loc[cells["status"] == NOT_APPLICABLE, "model"]))
    if skipped:
        verb = "does" if len(skipped) == 1 else "do"
        caveats.append(f"{_names(skipped)} {verb} not apply to this task")
    return caveats


def verdict(
    task: str,
    meta: TaskMeta,
    frame: pd.DataFrame,
    cells: pd.DataFrame,
    timing: dict[str, Any] | None = None,
) -> Verdict:
    """``task``'s verdict from its leaderboard ``frame``, the run's ``cells`` (its own rows
    are picked out) and run.json's ``timing`` section (``unstable``, ``unstable_reason``)."""
    mine = cells[cells["task"] == task] if "task" in cells else cells
    metric = column_label(meta.primary_metric)
    if frame.empty:
        sentence = f"{task}: no model has figures to rank."
        return Verdict(task, sentence, _caveats(frame, meta, mine, timing or {}, True))
    primary = meta.primary_metric
    halves = frame.get(f"{primary}_ci95", pd.Series(math.nan, index=frame.index))
    intervals = bool(halves.notna().all())
    seeds = int(frame[f"{primary}_n"].max()) if f"{primary}_n" in frame else 1
    counted = f", {seeds} seeds" if intervals else ", one seed"
    clauses = [_order(frame, primary, intervals), *_against_references(frame, meta)]
    sentence = f"{task}, by {metric} ({meta.direction} is better{counted}): " + "; ".join(clauses)
    return Verdict(task, sentence + ".", _caveats(frame, meta, mine, timing or {}, intervals))
