"""Per-task leaderboards: seeds aggregated to mean, 95% interval and n; honest ranks.

Ranks are by the task's primary metric on the test split, taken once per cell at the selected
epoch; the validation figure that selected it is shown beside it. A model's rank is one plus
the number of models whose whole 95% interval lies on the better side of its own, so models
whose intervals overlap share a rank ("not separable") rather than being ordered by noise.
With one seed there is no interval and ranks follow the values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report.formatting import format_setting, format_value, one_notation
from harness.report.meta import TaskMeta
from harness.storage.escape import md_code, md_table, md_text
from harness.storage.status import BROKEN, DIVERGED, NOT_APPLICABLE, OK
from harness.training.timing import TIMING_COLUMNS

#: Test metrics shown in every leaderboard, with their validation and training counterparts.
SHOWN = [
    ("test_loss", "val_loss", "train_loss"),
    ("test_perplexity", "val_perplexity", "train_perplexity"),
    ("test_accuracy", "val_accuracy", "train_accuracy"),
]
#: Speed figures from the timing phase (median and interquartile range of timed rounds), in
#: the order they are shown; a run shows those its timing records have (a tune or an older run
#: may have none, or no ratios to a reference model).
SPEED = [
    "train_throughput", "infer_throughput", "gen_tokens_per_s",
    "train_speed_vs_ref", "infer_speed_vs_ref", "gen_speed_vs_ref",
    "train_ms_per_batch", "infer_ms_per_batch", "gen_ms_per_token",
]  # fmt: skip
#: Taken once per model, not averaged over seeds: every seed of a pair shares its timing.
_PER_PAIR = set(TIMING_COLUMNS)


def interval(values: pd.Series) -> tuple[float, float, int]:
    """Mean, half-width of the two-sided 95% t interval (NaN for n < 2), and n."""
    import numpy as np

    clean = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    clean = clean[~np.isnan(clean)]
    n = len(clean)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(clean.mean())
    if n < 2:
        return mean, math.nan, n
    return mean, float(t_quantile(n - 1) * clean.std(ddof=1) / math.sqrt(n)), n


@functools.lru_cache(maxsize=256)
def t_quantile(dof: int) -> float:
    """The 97.5% quantile of Student's t (a leaderboard asks for the same few, many times)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def aggregate(cells: pd.DataFrame, task: str, meta: TaskMeta) -> pd.DataFrame:
    """One row per model of ``task``: mean, ci95 and n of every numeric metric, plus rank."""
    ok = cells[(cells["task"] == task) & (cells["status"] == OK)]
    if ok.empty:
        return pd.DataFrame()
    ok = ok.dropna(axis=1, how="all")
    numeric = [
        c
        for c in ok.columns
        if c not in ("seed",)
        and c not in _PER_PAIR
        and pd.api.types.is_numeric_dtype(pd.to_numeric(ok[c], errors="coerce"))
        and ok[c].notna().any()
        and ok[c].map(lambda v: not isinstance(v, (bool, str))).all()
    ]
    rows = []
    for model, group in ok.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model}
        for column in numeric:
            mean, half, n = interval(group[column])
            row[column], row[f"{column}_ci95"], row[f"{column}_n"] = mean, half, n
        for column in ok.columns:
            if column in _PER_PAIR:
                values = group[column].dropna()
                numbers = pd.to_numeric(values, errors="coerce")
                if len(values) and numbers.isna().all():  # a label (the speed reference)
                    row[column] = values.iloc[0]
                else:
                    row[column] = numbers.median()
            if column.startswith("task_") and column not in numeric:
                values = group[column].dropna().tolist()
                row[column] = _summarize_labels(values)
        row["recipe"], row["hyperparameters"] = recipe_origin(meta, str(model), group)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    primary, higher = meta.primary_metric, meta.higher_is_better
    frame["rank"] = [_rank(frame, i, primary, higher) for i in range(len(frame))]
    counts = frame["rank"].value_counts()
    frame["separable"] = frame["rank"].map(lambda r: counts[r] == 1)
    for metric in meta.optimum:
        better_up = higher_is_better(metric, meta)
        best = optimum_for(meta, metric).value
        if metric in frame and better_up is not None:  # no direction known: no gap, no guess
            # positive: how far the model is from the best achievable
            worse = frame[metric] < best if better_up else frame[metric] > best
            frame[f"gap_to_best_{metric}"] = (frame[metric] - best).abs() * worse.map(
                {True: 1, False: -1}
            )
    frame = frame.sort_values(["rank", primary], ascending=[True, not higher])
    frame = frame.reset_index(drop=True)
    _flag_sizes(frame)
    return _beats_next(frame, ok, primary, higher)


#: A model whose parameter count is further than this from the others' median is flagged.
SIZE_TOLERANCE = 0.10


@dataclass(frozen=True)
class Optimum:
    """The figure a gap is measured against: the task's expected optimum, or a baseline's
    realized score where one beats it on the same test data (``realized_by`` names it)."""

    value: float
    expected: float
    realized_by: str | None = None


def optimum_for(meta: TaskMeta, metric: str) -> Optimum:
    """The best achievable ``metric`` to measure a gap against.

    A task's optimum is an expectation (the Bayes predictor's expected accuracy); a baseline
    evaluated on the very test data can land beyond it by the luck of the draw, as the
    Bayes filter does on consecutive. A baseline beyond the expected optimum can only be such a
    realization, so it is the optimum of this test set and the gap is measured against it.
    """
    expected = float(meta.optimum[metric])
    better_up = higher_is_better(metric, meta)
    best = Optimum(expected, expected)
    if better_up is None:
        return best
    for baseline in meta.baselines:
        value = baseline.metrics.get(metric)
        if value is None or pd.isna(value):
            continue
        if (value > best.value) if better_up else (value < best.value):
            best = Optimum(float(value), expected, baseline.name)
    return best


def realized_optima(meta: TaskMeta) -> dict[str, Optimum]:
    """The metrics on which a baseline beats the expected optimum, with that optimum."""
    found = {metric: optimum_for(meta, metric) for metric in meta.optimum}
    return {metric: best for metric, best in found.items() if best.realized_by is not None}


def optimum_notes(meta: TaskMeta) -> list[str]:
    """Why the best achievable sits below a baseline: one sentence per baseline that beats
    the expected optimum, naming the metrics and both figures."""
    by_baseline: dict[str, list[str]] = {}
    for metric, best in realized_optima(meta).items():
        figures = f"{metric} {format_value(best.value)} vs {format_value(best.expected)}"
        by_baseline.setdefault(str(best.realized_by), []).append(figures)
    return [
        f"{name} scores beyond the expected best achievable ({'; '.join(figures)}): the best "
        f"achievable is an expectation over test sets and {name} the optimum realized on this "
        "one, so the gaps are measured against it."
        for name, figures in by_baseline.items()
    ]


#: A cell whose test loss is more than this many times the worst baseline's has diverged,
#: however finite its numbers: ``--lr 1e6`` on sine gives losses of 1e11.
DIVERGE_FACTOR = 1000.0


def mark_diverged(cells: pd.DataFrame, metas: dict[str, TaskMeta]) -> pd.DataFrame:
    """``cells`` with each finished cell whose loss is far above every baseline's marked
    ``diverged`` (with the reason as its error), so no table ranks it.

    Decided here, from the baselines in run.json, rather than in the training loop: the loop
    sees no baseline (the session computes them for the report), a finite loss is a legal
    result there, and a run folder written before this rule reads the same way. The cell's
    record on disk keeps ``ok`` and its figures.
    """
    if cells.empty or "test_loss" not in cells:
        return cells
    marked = None
    for task, meta in metas.items():
        losses = [b.metrics.get("test_loss") for b in meta.baselines]
        losses = [float(v) for v in losses if v is not None and not pd.isna(v) and v > 0]
        if not losses:
            continue
        worst = max(losses)
        worst_name = next(b.name for b in meta.baselines if b.metrics.get("test_loss") == worst)
        loss = pd.to_numeric(cells["test_loss"], errors="coerce")
        far = (cells["task"] == task) & (cells["status"] == OK) & (loss > DIVERGE_FACTOR * worst)
        if not far.any():
            continue
        marked = cells.copy() if marked is None else marked
        for index in cells.index[far]:
            marked.at[index, "status"] = DIVERGED
            marked.at[index, "error"] = (
                f"test_loss {float(loss[index]):.3g} is more than "
                f"{DIVERGE_FACTOR:,.0f}x the worst baseline's ({worst_name}: "
                f"{format_value(worst)}): diverged, not ranked"
            )
    return cells if marked is None else marked


def _flag_sizes(frame: pd.DataFrame) -> None:
    """``params_vs_median``: a model's parameter count relative to the median of the other
    models' (0.25: a quarter more); ``size_flagged`` beyond ``SIZE_TOLERANCE`` either way (the
    Long Range Arena rule: a ranking of unequal sizes compares sizes, not architectures)."""
    if "params" not in frame or len(frame) < 2:
        return
    params = frame["params"].astype(float)
    ratios = [
        params.iat[i] / params.drop(index=params.index[i]).median() - 1.0
        for i in range(len(params))
    ]
    frame["params_vs_median"] = ratios
    frame["size_flagged"] = [abs(r) > SIZE_TOLERANCE for r in ratios]


def probability_of_beating(
    mine: Any, theirs: Any, higher: bool, resamples: int = 2000
) -> tuple[float, float, float]:
    """P(a seed of A beats a seed of B) over every pair of their seeds (ties count half), with
    a 95% percentile bootstrap interval that resamples each model's seeds (the "probability of
    improvement" of Agarwal et al. 2021). NaN with fewer than two seeds on either side."""
    import inspect

    import numpy as np
    from scipy import stats

    a = np.asarray(pd.to_numeric(pd.Series(mine), errors="coerce").dropna(), dtype=float)
    b = np.asarray(pd.to_numeric(pd.Series(theirs), errors="coerce").dropna(), dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan

    def statistic(x: Any, y: Any, axis: int = -1) -> Any:
        x = np.moveaxis(x, axis, -1)[..., :, None]
        y = np.moveaxis(y, axis, -1)[..., None, :]
        wins = (x > y) if higher else (x < y)
        return (wins + 0.5 * (x == y)).mean(axis=(-2, -1))

    seeded = np.random.default_rng(0)  # the same table from the same cells, every time
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    result = stats.bootstrap(
        (a, b),
        statistic,
        n_resamples=resamples,
        vectorized=True,
        method="percentile",
        **{key: seeded},
    )
    low, high = result.confidence_interval
    return float(statistic(a, b)), float(low), float(high)


BEATS_COLUMNS = ["p_beats_next", "p_beats_next_low", "p_beats_next_high"]


def _beats_next(frame: pd.DataFrame, ok: pd.DataFrame, primary: str, higher: bool) -> pd.DataFrame:
    """For each model and the one ranked right after it, the probability it beats that one
    over seeds with its interval, placed beside the overlap marks (``rank``, ``separable``)."""
    if primary not in ok:
        return frame
    values = {model: group[primary] for model, group in ok.groupby("model", sort=False)}
    figures = [
        probability_of_beating(
            values[frame.at[i, "model"]], values[frame.at[i + 1, "model"]], higher
        )
        if i + 1 < len(frame)
        else (math.nan,) * 3
        for i in range(len(frame))
    ]
    beats = pd.DataFrame(figures, columns=BEATS_COLUMNS, index=frame.index)
    at = list(frame.columns).index("separable") + 1
    return pd.concat([frame.iloc[:, :at], beats, frame.iloc[:, at:]], axis=1)


#: The direction of the core's metrics, by the part of the column name after train_/test_.
CORE_DIRECTIONS = {"loss": False, "perplexity": False, "accuracy": True}


def higher_is_better(metric: str, meta: TaskMeta) -> bool | None:
    """Whether higher is better for a column of ``meta``'s task; ``None`` when nobody said.

    The primary metric's direction is the task's ``higher_is_better``; a task's own metric
    (``task_<key>``) has the direction the task declares in ``metric_directions``; the core's
    loss, perplexity and accuracy have theirs.
    """
    if metric == meta.primary_metric:
        return bool(meta.higher_is_better)
    if metric.startswith("task_"):
        direction = meta.metric_directions.get(metric.removeprefix("task_"))
        return None if direction is None else direction == "higher"
    split, _, kind = metric.partition("_")
    return CORE_DIRECTIONS.get(kind) if split in ("train", "val", "test") else None


#: Column labels the leaderboard itself uses: a task's own metric of the same name keeps its
#: ``task_`` prefix, so it never overwrites one of them.
RESERVED_LABELS = {
    "rank", "model", "n", "separable", "gap to best", "val", "train", "best_epoch", "params",
    "train_wall_seconds", *SPEED,
    "params_vs_median", "P(beats next)", "recipe", "hyperparameters",
    *(c for group in SHOWN for c in group),
}  # fmt: skip


def column_label(column: str) -> str:
    """The leaderboard's heading for a column: a task's own metric without ``task_``, unless
    that name is one the leaderboard already uses."""
    if not column.startswith("task_"):
        return column
    short = column.removeprefix("task_")
    taken = short in RESERVED_LABELS or short.startswith(("gap_to_best_", "task_"))
    return column if taken else short


DEFAULT_ORIGIN = "task default"
#: Recipe fields named in the hyperparameters column of a model trained with the task default.
NAMED_FIELDS = {"lr": "lr", "hidden_size": "hidden", "weight_decay": "wd"}


def recipe_origin(meta: TaskMeta, model: str, cells: pd.DataFrame) -> tuple[str, str]:
    """Where a model's recipe came from, and its hyperparameters, as two short labels.

    A tuned model (``meta.recipes[model]``, written by `harness tune`) says how many trials
    and device-seconds chose it; otherwise the task's default recipe, "with overrides" when a
    flag such as ``--lr`` changed it.
    """
    tuned = meta.recipes.get(model)
    if tuned and tuned.get("params") is not None:
        origin = f"tuned: {tuned['trials']} trials, {tuned['device_seconds']:.0f} device-s"
        return origin, _params_text(tuned["params"])
    first = cells.iloc[0]
    params = {f: first[f] for f in NAMED_FIELDS if f in cells and not pd.isna(first[f])}
    changed = any(meta.recipe.get(f, value) != value for f, value in params.items())
    return DEFAULT_ORIGIN + (" with overrides" if changed else ""), _params_text(params)


def tuning_notes(meta: TaskMeta) -> list[str]:
    """How the tuned models' recipes were chosen, one line per model, for the markdown."""
    lines = []
    for model, pair in meta.recipes.items():
        if pair.get("params") is None:
            continue
        lines.append(
            f"- `{model}` tuned by `harness tune`: {pair['trials']} trials on seed "
            f"{pair['trial_seed']} scored by `{pair['objective']}` on the validation split "
            f"(best {format_value(pair['best_validation'])}), "
            f"{pair['device_seconds']:.0f} device-seconds; "
            f"re-run on seeds {', '.join(map(str, pair.get('final_seeds', [])))}; test split "
            f"evaluated {pair.get('test_evaluations', '?')} times in all, "
            f"{pair.get('trial_test_evaluations', '?')} of them in the trials"
        )
    return lines


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{NAMED_FIELDS.get(k, k)} {format_setting(v)}" for k, v in params.items())


def _primary_first(shown: dict[str, str], primary: str, beside: list[str]) -> dict[str, str]:
    """Put the ranking column right after the model (a task's own metric shows unprefixed),
    with the columns ``beside`` it (its validation and training figures) next."""
    key = column_label(primary)
    if key not in shown:
        return shown
    ordered = {"rank": shown.pop("rank"), "model": shown.pop("model"), key: shown.pop(key)}
    ordered.update({name: shown.pop(name) for name in beside if name in shown})
    return {**ordered, **shown}


def _summarize_labels(values: list[Any]) -> Any:
    """Booleans become 'k/n', repeated strings one value, mixed strings joined."""
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return f"{sum(values)}/{len(values)}"
    unique = list(dict.fromkeys(str(v) for v in values))
    return unique[0] if len(unique) == 1 else " | ".join(unique)


def _rank(frame: pd.DataFrame, i: int, metric: str, higher: bool) -> int:
    me, my_half = frame.at[i, metric], frame.at[i, f"{metric}_ci95"]
    if pd.isna(me):
        return len(frame)
    better = 0
    for j in range(len(frame)):
        other, half = frame.at[j, metric], frame.at[j, f"{metric}_ci95"]
        if j == i or pd.isna(other):
            continue
        if pd.isna(my_half) or pd.isna(half):  # no interval: order by value, equal ties
            if not math.isclose(other, me, rel_tol=1e-6):
                better += (other > me) if higher else (other < me)
        elif higher:
            better += other - half > me + my_half
        else:
            better += other + half < me - my_half
    return 1 + int(better)


def _fmt_spread(row: pd.Series, column: str, compact: bool) -> str:
    """A timed median with its interquartile range: ``median [q1, q3]``, or ``median ±x%``
    (half the range relative to the median) where space is short."""
    median, q1, q3 = (row.get(column), row.get(f"{column}_q1"), row.get(f"{column}_q3"))
    if median is None or pd.isna(median):
        return ""
    whole = "throughput" in column
    text = format_value(median, whole=whole)
    if q1 is None or q3 is None or pd.isna(q1) or pd.isna(q3):
        return text
    if compact:
        return f"{text} ±{50 * (q3 - q1) / median:.0f}%" if median else text
    return f"{text} [{format_value(q1, whole=whole)}, {format_value(q3, whole=whole)}]"


#: The leaderboard's column groups in the order the report shows them: the test figures
#: always, each of the others behind a toggle of its own.
GROUPS = {
    "test": "test figures",
    "fit": "validation and training",
    "speed": "speed",
    "details": "size and recipe",
}
_FIT = ("val", "train", "best_epoch")
_DETAILS = ("params", "params_vs_median", "recipe", "hyperparameters")


def column_group(column: str, meta: TaskMeta) -> str:
    """Which of :data:`GROUPS` a leaderboard column (as :func:`display_table` labels it)
    belongs to."""
    speed_units = (" tokens/s", " steps/s")
    relative = column.startswith(("train x ", "infer x ", "gen x "))  # speed vs the reference
    if column in SPEED or column.endswith(speed_units) or column in _SPEED_EXTRA or relative:
        return "speed"
    if column in _DETAILS:
        return "details"
    if column in _FIT or column.startswith(("val_", "train_")):
        return "fit"
    if column.startswith("gap_to_best_") and column != f"gap_to_best_{meta.primary_metric}":
        return "details"
    return "test"


#: Speed columns besides the timed figures: the cells' own training time, the unstable flag.
_SPEED_EXTRA = ("train_wall_seconds", "speed_unstable")


def speed_columns(frame: pd.DataFrame) -> list[str]:
    """The timing phase's figures this leaderboard has (none for a run without timings)."""
    return [c for c in SPEED if c in frame and frame[c].notna().any()]


def display_table(frame: pd.DataFrame, meta: TaskMeta, compact: bool = False) -> pd.DataFrame:
    """The leaderboard as strings: test beside validation and train, gap to optimum, the
    selected epoch, speed, extras.

    ``compact`` (the terminal view) keeps the primary metric with its validation and training
    counterparts, the perplexity of a token task, the gap, the task's own flags and short
    labels, and training speed; the markdown file has every column. Speed columns appear only
    where the timing phase left figures (a tune's final cells may have none).
    """
    primary = meta.primary_metric
    timed = speed_columns(frame)
    if compact:
        timed = [c for c in timed if c in ("train_throughput", "train_speed_vs_ref")]
    unstable = "speed_unstable" in frame and frame["speed_unstable"].fillna(0).astype(bool).any()
    named = frame["speed_reference"].dropna() if "speed_reference" in frame else []
    reference = str(named.iloc[0]) if len(named) else "reference"
    rows = []
    for _, row in frame.iterrows():
        shown: dict[str, str] = {
            "rank": str(row["rank"]) + ("" if row["separable"] else "="),
            "model": row["model"],
        }
        beside = []  # the primary's validation and training figures, shown right after it
        for test, val, train in SHOWN:
            if test not in row or pd.isna(row.get(test)):
                continue
            perplexity = test == "test_perplexity" and meta.input_kind == "tokens"
            if compact and test != primary:
                if perplexity:  # a token task's terminal view shows perplexity too
                    shown[test] = format_value(row[test], row.get(f"{test}_ci95"))
                continue
            labels = ("val", "train") if compact else (val, train)
            shown[test] = format_value(row[test], row.get(f"{test}_ci95"))
            shown[labels[0]] = format_value(row.get(val), row.get(f"{val}_ci95"))
            shown[labels[1]] = format_value(row.get(train), row.get(f"{train}_ci95"))
            beside += list(labels) if test == primary else []
        if primary.startswith("task_") and f"val_{primary}" in row:
            label = "val" if compact else f"val_{primary.removeprefix('task_')}"
            shown[label] = format_value(row[f"val_{primary}"], row.get(f"val_{primary}_ci95"))
            beside.append(label)
        epoch, epoch_half = row.get("best_epoch"), row.get("best_epoch_ci95")
        shown["best_epoch"] = format_value(epoch, epoch_half, whole=True)
        beside.append("best_epoch")
        for gap in (c for c in row.index if c.startswith("gap_to_best_")):
            metric = gap.removeprefix("gap_to_best_")
            if metric == primary or not compact:
                shown[gap if not compact else "gap to best"] = format_value(row[gap])
        for column in row.index:
            if column.startswith("task_") and not column.endswith(("_ci95", "_n")):
                whole = column.endswith("epoch")
                value = format_value(row[column], row.get(f"{column}_ci95"), whole)
                if not compact or len(value) <= 24:
                    shown[column_label(column)] = value
        if not pd.isna(row.get("p_beats_next", math.nan)):
            low, high = row["p_beats_next_low"], row["p_beats_next_high"]
            shown["P(beats next)"] = f"{row['p_beats_next']:.2f}" + (
                "" if compact else f" [{low:.2f}, {high:.2f}]"
            )
        shown["n"] = str(int(row.get(f"{primary}_n", 0)))
        if not compact or any(frame["recipe"] != DEFAULT_ORIGIN):
            shown["recipe"], shown["hyperparameters"] = row["recipe"], row["hyperparameters"]
        shown["params"] = format_value(row.get("params"), whole=True)
        if row.get("size_flagged") is True:
            shown["params"] += " !"  # more than 10% from the others' median
        if not compact and "params_vs_median" in row:
            shown["params_vs_median"] = f"{row['params_vs_median']:+.0%}"
        unit = "tokens/s" if meta.input_kind == "tokens" else "steps/s"
        for column in timed:
            label = column.replace("_throughput", f" {unit}") if compact else column
            if column.endswith("_speed_vs_ref"):  # "train x rnn": a multiple of its speed
                label = column.replace("_speed_vs_ref", f" x {reference}")
            shown[label] = _fmt_spread(row, column, compact)
        if not compact and "train_seconds" in row and not pd.isna(row.get("train_seconds")):
            shown["train_wall_seconds"] = format_value(
                row.get("train_seconds"), row.get("train_seconds_ci95")
            )
        if unstable and not compact:  # the terminal's verdict under the table says it
            shown["speed_unstable"] = "yes" if row.get("speed_unstable") else ""
        rows.append(_primary_first(shown, primary, beside))
    columns = list(dict.fromkeys(c for r in rows for c in r)) if rows else ["rank", "model"]
    realized = realized_optima(meta)
    for label, metrics in meta.references:
        if label == "(best achievable)" and realized:
            label = "(best achievable, expected)"  # a baseline realizes more on this test set
        named = {column_label(k): v for k, v in metrics.items()}  # as the columns show
        shown = {k: format_value(v) for k, v in named.items() if k in columns}
        if shown:
            rows.append({"rank": "", "model": label, **shown})
    return pd.DataFrame(rows, columns=columns).astype(object).fillna("")


def scored_text(scored_steps: int | None) -> str:
    """What the loss, perplexity and accuracy cover: every step, or the last N of each sequence."""
    if not scored_steps:
        return "Loss, perplexity and accuracy cover every step of each sequence."
    steps = "the last step" if scored_steps == 1 else f"the last {scored_steps} steps"
    return (
        f"Loss, perplexity and accuracy cover only {steps} of each sequence "
        f"(`scored_steps = {scored_steps}`)."
    )


def split_unfinished(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cells that ran and broke (failed, diverged), and apart from them the cells that were
    never run because the model cannot serve the task (not applicable)."""
    broken = cells[cells["status"].isin(BROKEN)]
    return broken, cells[cells["status"] == NOT_APPLICABLE]


def unfinished_markdown(cells: pd.DataFrame) -> list[str]:
    """The leaderboard document's closing sections: the cells that did not finish, then the
    pairs that do not apply (one line per pair, not per seed)."""
    broken, skipped = split_unfinished(cells)
    parts: list[str] = []
    if not broken.empty:
        parts += ["## Cells that did not finish", ""]
        parts += [md_table(broken[["task", "model", "seed", "status", "error"]]), ""]
    if not skipped.empty:
        parts += ["## Not applicable (never run)", ""]
        pairs = skipped.drop_duplicates(["task", "model"])
        parts += [md_table(pairs[["task", "model", "error"]].rename(columns={"error": "why"}))]
        parts.append("")
    return parts


def speed_text(frame: pd.DataFrame, timing: dict[str, Any], task: str) -> str:
    """What the speed columns of a leaderboard are, and how steady the machine was; empty
    when the board has none (``--no-timing``, a tune)."""
    if frame.empty or not speed_columns(frame):
        return ""
    text = (
        " Speed columns come from a timing phase of their own, before any cell ran (each "
        "pair's training step, inference step and generation, the rounds interleaved across "
        "the task's pairs): median [interquartile range] of the timed rounds."
    )
    reference = (timing.get("references") or {}).get(task)
    if reference:
        text += (
            f" `train x {reference}`, `infer x {reference}`, `gen x {reference}`: speed as a "
            f"multiple of {reference}'s (above 1: faster), from rounds timed side by side."
        )
    if timing.get("unstable"):
        text += f" Speed is marked unstable: {timing.get('unstable_reason', '')}."
    elif timing.get("noise"):
        text += " The load, steal time and a reference kernel said the machine was steady."
    return text


def markdown(
    cells: pd.DataFrame,
    metas: dict[str, TaskMeta],
    units: list[tuple[str, str, TaskMeta, pd.DataFrame]] | None = None,
    timing: dict[str, Any] | None = None,
) -> str:
    """The whole leaderboard document: one section per task (with a sweep: per variant,
    ``units`` = (task, variant, metadata, its cells)), then cells that did not finish.
    ``timing``: run.json's timing section (its reference models, whether it was unstable).

    A task's table holds plugin text (a baseline's name, a string metric): ``&``, ``<`` and
    ``>`` in it become character references, so a ``<script>`` there shows as text in a
    renderer that passes HTML through, as report.html and the CSV keep it inert."""

    def inert(frame: pd.DataFrame) -> pd.DataFrame:
        def text(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        return frame.astype(object).map(text).rename(columns=text)

    parts = ["# Leaderboard", ""]
    units = units if units is not None else [(t, "", m, cells) for t, m in metas.items()]
    for task, variant, meta, unit_cells in units:
        frame = aggregate(unit_cells, task, meta)
        title = f"{task} [{variant}]" if variant else task
        parts += [f"## {md_text(title)}", "", md_text(meta.description), ""]
        parts += [
            f"Ranked by `{meta.primary_metric}` on the test split ({meta.direction} is better), "
            "evaluated once per cell at the epoch selected on validation (`best_epoch`: the "
            "best on validation; the run's `select` setting says whether it or the last epoch "
            "was reported). Validation: "
            f"{meta.validation or 'not recorded'}. "
            f"{scored_text(meta.scored_steps)} "
            "Values are mean ± 95% CI over seeds; `=` after a rank: not separable from "
            "another model with the same rank (intervals overlap). `P(beats next)`: the "
            "probability that a seed of this model beats a seed of the next one down, with its "
            "95% bootstrap interval (two seeds or more). `!` after `params`: more than "
            f"{SIZE_TOLERANCE:.0%} from the other models' median (compare sizes with `--params`). "
            "Rows in parentheses are trivial baselines and the best achievable figures."
            + speed_text(frame, timing or {}, task),
            "",
        ]
        if frame.empty:
            parts += ["No finished cells.", ""]
        else:
            parts += [md_table(inert(one_notation(display_table(frame, meta)))), ""]
        directions = meta.metric_directions
        for name, text in meta.metric_descriptions.items():
            better = f" ({directions[name]} is better)" if name in directions else ""
            parts.append(f"- {md_code(column_label('task_' + name))}{better}: {md_text(text)}")
        for baseline in meta.baselines:
            if baseline.description:
                parts.append(f"- {md_code(f'({baseline.name})')}: {md_text(baseline.description)}")
        parts += tuning_notes(meta)
        parts.append("")
    parts += unfinished_markdown(cells)  # failures, then (apart) the pairs that do not apply
    return "\n".join(parts)
