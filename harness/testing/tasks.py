"""``check_task``: does a task keep the contract the runner, tables and leaderboard rely on?"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

from harness.plugin_api.task import (
    Baseline,
    Recipe,
    Task,
    TaskData,
    TaskShape,
    dataclass_problem,
)
from harness.testing.common import (
    check_json,
    check_name,
    check_text,
    fail,
    fail_or_warn,
    is_number,
    one_thread,
    written_for,
)
from harness.training.contract import data_problem

#: Held-out columns every cell has, with the direction that is better for each.
CORE_HELD_OUT = {"test_loss": False, "test_perplexity": False, "test_accuracy": True}
CORE_COLUMNS = set(CORE_HELD_OUT) | {"train_loss", "train_perplexity", "train_accuracy"}


def check_task(
    task: Task,
    *,
    seeds: Sequence[int] = (0, 1),
    seed_varies: bool = True,
    train_epochs: int = 1,
    api: Any = None,
) -> None:
    """Check a task's metadata, data, determinism and metrics; raise AssertionError if broken.

    ``seed_varies=False`` is for tasks whose data is fixed by design (``hello`` has one
    sequence). ``train_epochs`` epochs of the kit's small GRU run through the real training
    loop on the task's own data, so ``evaluate``, ``baselines`` and ``optimum`` are checked
    against the columns a run really produces; 0 skips training and evaluates an untrained net.
    ``api``: the ``HARNESS_API`` its plugin declares (default: its module's, else the current
    one); what a later minor version added is then a :class:`ConformanceWarning`, not a failure.
    """
    subject = f"task {getattr(task, 'name', task)!r}"
    if not isinstance(task, Task):
        fail(subject, f"{type(task).__name__} is not a subclass of harness.Task")
    check_metadata(task, subject)
    with one_thread():
        data = make_checked_data(task, seeds[0], subject)
        check_determinism(task, seeds, seed_varies, subject)
        check_metrics(task, data, seeds[0], train_epochs, subject, written_for(task, api))


def check_metadata(task: Task, subject: str) -> None:
    check_name(subject, task.name)
    check_text(subject, "description", task.description)
    check_is_dataclass(task, subject)
    if not isinstance(task.shape, TaskShape):
        fail(subject, f"shape must be a harness.TaskShape, not {task.shape!r}")
    if task.shape != task.shape:
        fail(subject, "shape changes from one access to the next")
    if not isinstance(task.recipe, Recipe):
        fail(subject, f"recipe must be a harness.Recipe, not {task.recipe!r}")
    if not isinstance(task.higher_is_better, bool):
        fail(subject, f"higher_is_better must be True or False, not {task.higher_is_better!r}")
    primary = task.primary_metric
    if not isinstance(primary, str) or not primary.startswith(("test_", "task_")):
        fail(
            subject,
            f"primary_metric {primary!r} must be a test column: one of "
            f"{', '.join(sorted(CORE_HELD_OUT))} or task_<key> for a key evaluate() returns",
        )
    if primary.startswith("test_"):
        if primary not in CORE_HELD_OUT:
            fail(
                subject,
                f"primary_metric {primary!r} is not one of {', '.join(sorted(CORE_HELD_OUT))}",
            )
        if primary == "test_perplexity" and task.shape.output_kind != "classes":
            fail(subject, "primary_metric test_perplexity needs class outputs")
        if (
            primary == "test_accuracy"
            and task.shape.output_kind == "values"
            and task.accuracy_tolerance is None
        ):
            fail(
                subject, "primary_metric test_accuracy on value outputs needs an accuracy_tolerance"
            )
        if task.higher_is_better != CORE_HELD_OUT[primary]:
            better = "higher" if CORE_HELD_OUT[primary] else "lower"
            fail(
                subject,
                f"{primary} is better when {better}, but higher_is_better is "
                f"{task.higher_is_better}",
            )
    tolerance = task.accuracy_tolerance
    if tolerance is not None and not (is_number(tolerance) and tolerance > 0):
        fail(subject, f"accuracy_tolerance must be None or a positive number, not {tolerance!r}")
    descriptions = task.metric_descriptions
    if not isinstance(descriptions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in descriptions.items()
    ):
        fail(subject, "metric_descriptions must map metric keys to strings")
    options = task.options()
    check_json(subject, "options()", options)
    if task.with_options(**options).options() != options:
        fail(subject, "with_options(**options()) does not give back the same options")


def check_is_dataclass(task: Task, subject: str) -> None:
    """Options are dataclass fields: in a subclass without ``@dataclass``, annotated options
    and new defaults are plain class attributes, so ``-o`` cannot set them and they are left
    out of ``options()`` and the config hash, silently (the rule registration applies too)."""
    problem = dataclass_problem(type(task))
    if problem:
        fail(subject, problem)


def make_checked_data(task: Task, seed: int, subject: str) -> TaskData:
    """``make_data(seed)``, with every tensor checked against the task's shape (the rules every
    cell applies before training, see :mod:`harness.training.contract`), and on the CPU."""
    import torch

    data = task.make_data(seed)
    problem = data_problem(task.shape, data, task.scored_steps)
    if problem:
        fail(subject, problem)
    for split in ("train", "test") if data.val_inputs is None else ("train", "val", "test"):
        for what in (f"{split}_inputs", f"{split}_targets"):
            tensor = getattr(data, what)
            if tensor.device != torch.device("cpu"):
                fail(
                    subject,
                    f"{what} is on {tensor.device}; make data on the CPU, the runner moves it",
                )
    if not isinstance(data.info, dict):
        fail(subject, f"info must be a dict, not {type(data.info).__name__}")
    return data


@contextlib.contextmanager
def _global_rngs_seeded(value: int) -> Iterator[None]:
    """Seed torch's, numpy's and random's global generators, and restore them afterwards."""
    import numpy as np
    import torch

    numpy_state, random_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(value)
        np.random.seed(value)
        random.seed(value)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(random_state)


def _same(a: TaskData, b: TaskData, fields: Sequence[str]) -> list[str]:
    import torch

    return [f for f in fields if torch.equal(getattr(a, f), getattr(b, f))]


def check_determinism(task: Task, seeds: Sequence[int], seed_varies: bool, subject: str) -> None:
    fields: tuple[str, ...] = ("train_inputs", "train_targets", "test_inputs", "test_targets")
    first = seeds[0]
    with _global_rngs_seeded(1):
        one = task.make_data(first)
    if one.val_inputs is not None:
        fields += ("val_inputs", "val_targets")
    with _global_rngs_seeded(2):
        two = task.make_data(first)
    differ = sorted(set(fields) - set(_same(one, two, fields)))
    if differ:
        fail(
            subject,
            f"make_data({first}) gave different {', '.join(differ)} on two calls: draw from "
            f"generators seeded with the seed (np.random.default_rng(seed), "
            f"torch.Generator().manual_seed(seed)), never from a global random state",
        )
    if seed_varies and len(seeds) > 1:
        other = task.make_data(seeds[1])
        if len(_same(one, other, ("train_inputs", "train_targets"))) == 2:
            fail(
                subject,
                f"make_data({first}) and make_data({seeds[1]}) gave the same training data, so "
                "seeds do not vary the data; if that is by design, check with seed_varies=False",
            )


def check_metric_names(task: Task, extra: dict[str, Any], subject: str) -> None:
    """Own metrics' names must not collide with the core's, and their directions must be known
    words, agree with the primary metric, and name metrics that exist."""
    from harness.report.ranking import RESERVED_LABELS
    from harness.report.tables import CORE_COLUMNS as TABLE_COLUMNS

    taken = set(TABLE_COLUMNS) | RESERVED_LABELS
    for key in extra:
        if key in taken:
            fail(
                subject,
                f"evaluate() returns {key!r}, the name of one of the core's columns: the "
                f"leaderboard would show two {key!r} columns; rename it (e.g. 'own_{key}')",
            )
        if key.endswith(("_ci95", "_n")) or key.startswith("gap_to_best_"):
            fail(
                subject,
                f"evaluate() returns {key!r}: names ending in _ci95 or _n, or starting with "
                "gap_to_best_, are the leaderboard's own columns for intervals, counts and gaps",
            )
    directions = task.metric_directions
    if not isinstance(directions, dict):
        fail(subject, f"metric_directions must be a dict, not {type(directions).__name__}")
    for key, direction in directions.items():
        if direction not in ("higher", "lower"):
            fail(
                subject,
                f"metric_directions[{key!r}] must be 'higher' or 'lower', not {direction!r}",
            )
        if key not in extra:
            fail(subject, f"metric_directions names {key!r}, which evaluate() does not return")
    primary = task.primary_metric.removeprefix("task_")
    if (
        task.primary_metric.startswith("task_")
        and primary in directions
        and (directions[primary] == "higher") != task.higher_is_better
    ):
        fail(
            subject,
            f"metric_directions says {primary!r} is better {directions[primary]}, but "
            f"higher_is_better is {task.higher_is_better}",
        )


def check_metrics(
    task: Task,
    data: TaskData,
    seed: int,
    train_epochs: int,
    subject: str,
    api: tuple[int, int] = (1, 2),
) -> None:
    """Train the kit's model briefly and check every metric a cell and a report would hold."""
    import torch

    from harness.testing.reference import REFERENCE_MODEL

    if train_epochs > 0:
        from harness.training.train import train_cell

        recipe = task.recipe.with_overrides(epochs=train_epochs, hidden_size=8, num_layers=1)
        outcome = train_cell(task, REFERENCE_MODEL, seed, torch.device("cpu"), recipe)
        metrics = outcome.metrics
        extra = {k[len("task_") :]: v for k, v in metrics.items() if k.startswith("task_")}
        samples = outcome.samples
    else:
        net = REFERENCE_MODEL.make(task.shape, 8, 1).eval()
        curve = [
            {
                "epoch": 1,
                "train_loss": 1.0,
                "val_loss": 1.0,
                "val_perplexity": None,
                "val_accuracy": None,
            }
        ]
        with torch.no_grad():
            result = task.evaluate(net, data, curve)
        if not isinstance(result, dict):
            fail(subject, f"evaluate must return a dict, not {type(result).__name__}")
        extra = dict(result)
        samples = extra.pop("samples", {}) or {}
        metrics = {**dict.fromkeys(CORE_COLUMNS, 0.0), **{f"task_{k}": v for k, v in extra.items()}}
    for key, value in extra.items():
        if not isinstance(key, str):
            fail(subject, f"evaluate returned a non-string key {key!r}")
        if not (value is None or isinstance(value, (str, bool)) or is_number(value)):
            fail(
                subject,
                f"evaluate()[{key!r}] is a {type(value).__name__}; metrics are numbers, strings, "
                "booleans or None (put lists for plots under the 'samples' key)",
            )
    check_json(subject, "evaluate()'s metrics", extra)
    check_metric_names(task, extra, subject)
    check_json(subject, "evaluate()['samples']", samples)
    columns = CORE_COLUMNS | {f"task_{k}" for k in extra}
    primary = task.primary_metric
    if primary not in metrics:
        fail(
            subject,
            f"primary_metric {primary!r} is not a column of its results; evaluate() returns "
            f"{', '.join(sorted(extra)) or 'nothing'} (columns task_<key>)",
        )
    if train_epochs > 0 and not is_number(metrics[primary]):
        fail(
            subject, f"primary_metric {primary!r} is {metrics[primary]!r}, not a number to rank by"
        )
    undescribed = sorted(set(task.metric_descriptions) - set(extra))
    if undescribed:
        fail(
            subject,
            f"metric_descriptions names {', '.join(undescribed)}, which evaluate() does not return",
        )

    def check_figures(what: str, figures: Any) -> None:
        if not isinstance(figures, dict):
            fail(
                subject, f"{what} must be a dict of column -> number, not {type(figures).__name__}"
            )
        for key, value in figures.items():
            if key not in columns:
                fail(
                    subject,
                    f"{what} names {key!r}, which is not a column of its results (known: "
                    f"{', '.join(sorted(columns))}); a task's own metrics are task_<key>",
                )
            if not is_number(value):
                fail(subject, f"{what}[{key!r}] is {value!r}, not a number")

    optimum = task.optimum(data)
    check_figures("optimum()", optimum)
    for key in optimum:
        own = key.removeprefix("task_")
        if key.startswith("task_") and key != primary and own not in task.metric_directions:
            fail_or_warn(  # metric_directions came with API 1.2
                subject,
                f"optimum() names {key!r}, but metric_directions does not say whether higher "
                f"or lower is better for {own!r}, so the leaderboard can show no gap to it",
                since=(1, 2),
                api=api,
            )
    baselines = task.baselines(data)
    if not isinstance(baselines, list):
        fail(
            subject,
            f"baselines must return a list of harness.plugin_api.task.Baseline, not "
            f"{type(baselines).__name__}",
        )
    names = [getattr(b, "name", None) for b in baselines]
    if len(set(names)) != len(names):
        fail(subject, f"baselines repeat a name: {names}")
    for baseline in baselines:
        if not isinstance(baseline, Baseline):
            fail(subject, f"baselines must be harness.Baseline objects, not {baseline!r}")
        check_text(subject, "a baseline's name", baseline.name)
        check_text(subject, f"baseline {baseline.name!r}'s description", baseline.description)
        check_figures(f"baseline {baseline.name!r}", baseline.metrics)
