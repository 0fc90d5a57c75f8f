"""``check_task``: does a task keep the contract the runner, tables and leaderboard rely on?"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

from harness.task import Baseline, Recipe, Task, TaskData, TaskShape
from harness.testing.common import check_json, check_name, check_text, fail, is_number, one_thread

#: Held-out columns every cell has, with the direction that is better for each.
CORE_HELD_OUT = {"test_loss": False, "test_perplexity": False, "test_accuracy": True}
CORE_COLUMNS = set(CORE_HELD_OUT) | {"train_loss", "train_perplexity", "train_accuracy"}


def check_task(
    task: Task,
    *,
    seeds: Sequence[int] = (0, 1),
    seed_varies: bool = True,
    train_epochs: int = 1,
) -> None:
    """Check a task's metadata, data, determinism and metrics; raise AssertionError if broken.

    ``seed_varies=False`` is for tasks whose data is fixed by design (``hello`` has one
    sequence). ``train_epochs`` epochs of the kit's small GRU run through the real training
    loop on the task's own data, so ``evaluate``, ``baselines`` and ``optimum`` are checked
    against the columns a run really produces; 0 skips training and evaluates an untrained net.
    """
    subject = f"task {getattr(task, 'name', task)!r}"
    if not isinstance(task, Task):
        fail(subject, f"{type(task).__name__} is not a subclass of harness.Task")
    check_metadata(task, subject)
    with one_thread():
        data = make_checked_data(task, seeds[0], subject)
        check_determinism(task, seeds, seed_varies, subject)
        check_metrics(task, data, seeds[0], train_epochs, subject)


def check_metadata(task: Task, subject: str) -> None:
    check_name(subject, task.name)
    check_text(subject, "description", task.description)
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
            f"primary_metric {primary!r} must be a held-out column: one of "
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


def make_checked_data(task: Task, seed: int, subject: str) -> TaskData:
    """``make_data(seed)``, with every tensor checked against the task's shape."""
    import torch

    data = task.make_data(seed)
    if not isinstance(data, TaskData):
        fail(subject, f"make_data must return a harness.TaskData, not {type(data).__name__}")
    shape = task.shape
    for split in ("train", "test"):
        inputs, targets = getattr(data, f"{split}_inputs"), getattr(data, f"{split}_targets")
        for what, tensor in ((f"{split}_inputs", inputs), (f"{split}_targets", targets)):
            if not isinstance(tensor, torch.Tensor):
                fail(subject, f"{what} must be a torch.Tensor, not {type(tensor).__name__}")
            if tensor.device.type != "cpu":
                fail(
                    subject,
                    f"{what} is on {tensor.device}; make data on the CPU, the runner moves it",
                )
        _check_tensor(
            subject, f"{split}_inputs", inputs, shape.input_kind == "tokens", shape.input_size
        )
        _check_tensor(
            subject, f"{split}_targets", targets, shape.output_kind == "classes", shape.output_size
        )
        if inputs.shape[0] < 1 or inputs.shape[1] < 1:
            fail(subject, f"{split}_inputs {tuple(inputs.shape)} is empty")
        if targets.shape[:2] != inputs.shape[:2]:
            fail(
                subject,
                f"{split}_targets {tuple(targets.shape)} must have one target per input step "
                f"(inputs are {tuple(inputs.shape)}); the loss is taken at every step",
            )
    if not isinstance(data.info, dict):
        fail(subject, f"info must be a dict, not {type(data.info).__name__}")
    return data


def _check_tensor(subject: str, what: str, tensor: Any, ids: bool, size: int) -> None:
    import torch

    if ids:
        if tensor.dim() != 2 or tensor.dtype != torch.int64:
            fail(
                subject,
                f"{what} must be (N, T) int64 ids, not {tuple(tensor.shape)} {tensor.dtype}",
            )
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= size):
            fail(subject, f"{what} holds ids outside 0..{size - 1} (the shape's size)")
        return
    if tensor.dim() != 3 or tensor.dtype != torch.float32 or tensor.shape[-1] != size:
        fail(
            subject,
            f"{what} must be (N, T, {size}) float32, not {tuple(tensor.shape)} {tensor.dtype}",
        )
    if not torch.isfinite(tensor).all():
        fail(subject, f"{what} holds NaN or infinite values")


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
    fields = ("train_inputs", "train_targets", "test_inputs", "test_targets")
    first = seeds[0]
    with _global_rngs_seeded(1):
        one = task.make_data(first)
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


def check_metrics(task: Task, data: TaskData, seed: int, train_epochs: int, subject: str) -> None:
    """Train the kit's model briefly and check every metric a cell and a report would hold."""
    import torch

    from harness.testing.reference import REFERENCE_MODEL

    if train_epochs > 0:
        from harness.train import train_cell

        recipe = task.recipe.with_overrides(epochs=train_epochs, hidden_size=8, num_layers=1)
        outcome = train_cell(task, REFERENCE_MODEL, seed, torch.device("cpu"), recipe)
        metrics = outcome.metrics
        extra = {k[len("task_") :]: v for k, v in metrics.items() if k.startswith("task_")}
        samples = outcome.samples
    else:
        net = REFERENCE_MODEL.build(task.shape, 8, 1).eval()
        curve = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "test_accuracy": None}]
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

    check_figures("optimum()", task.optimum(data))
    baselines = task.baselines(data)
    if not isinstance(baselines, list):
        fail(
            subject,
            f"baselines must return a list of harness.task.Baseline, not "
            f"{type(baselines).__name__}",
        )
    names = [getattr(b, "name", None) for b in baselines]
    if len(set(names)) != len(names):
        fail(subject, f"baselines repeat a name: {names}")
    for baseline in baselines:
        if not isinstance(baseline, Baseline):
            fail(subject, f"baselines must be harness.task.Baseline objects, not {baseline!r}")
        check_text(subject, "a baseline's name", baseline.name)
        check_text(subject, f"baseline {baseline.name!r}'s description", baseline.description)
        check_figures(f"baseline {baseline.name!r}", baseline.metrics)
