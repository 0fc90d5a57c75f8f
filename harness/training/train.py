"""One cell: train one model on one task with one seed on one device, and measure it.

This is the single training loop every model shares. Each epoch is followed by a validation
pass; the selected epoch's weights (the best on validation, or the last) are then evaluated once
on the test split. It returns plain data (a metrics row, the per-epoch curve, plot samples and,
on request, the ``state_dict``) so a cell can run in another process and its result can be
pickled back.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.plugin_api.model import Model
from harness.plugin_api.task import Recipe, Task, TaskData, with_validation
from harness.training.contract import check_data, check_first_forward
from harness.training.device import synchronize
from harness.training.metrics import loss_fn, score
from harness.training.state import detach_state


class Diverged(Exception):
    """The training loss became NaN or infinite."""


@dataclass
class CellOutcome:
    """What a finished cell hands back: metrics, per-epoch curve, plot samples, weights."""

    metrics: dict[str, Any]
    curve: list[dict[str, Any]]
    samples: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, Any] | None = None


def make_optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    kinds = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
    }
    return kinds[recipe.optimizer](params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_training_step(
    net: torch.nn.Module, recipe: Recipe, output_kind: str, scored_steps: int | None = None
):
    """A function ``step(x, y, state) -> (loss, state)``: forward, backward, clip, update.

    Shared by the training loop and the pytest-benchmark timing runs, so what is timed is what
    trains. The loss comes back as a tensor (no device sync inside the step).
    """
    optimizer = make_optimizer(recipe, net.parameters())
    criterion = loss_fn(output_kind, scored_steps)
    params = [p for p in net.parameters() if p.requires_grad]

    def step(x: torch.Tensor, y: torch.Tensor, state: Any = None):
        optimizer.zero_grad(set_to_none=True)
        out, new_state = net(x, state)
        loss = criterion(out, y)
        loss.backward()
        if recipe.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, recipe.clip)
        optimizer.step()
        return loss.detach(), new_state

    step.optimizer = optimizer  # type: ignore[attr-defined]
    return step


SELECT_MODES = ("best", "last")


@dataclass(frozen=True)
class Selection:
    """Which epoch's weights a cell reports, and when training stops early.

    ``mode="best"``: the epoch with the best validation figure of the task's primary metric
    (ties broken by the lower validation loss), its weights restored; ``"last"``: the final
    epoch. ``patience``: stop once that many epochs in a row brought no improvement
    (``None``: train every epoch of the recipe). ``until``: stop once the validation figure
    of the primary metric reaches this value (at least it where higher is better, at most it
    where lower is), as Zoology stops a run at validation accuracy 0.99.
    """

    mode: str = "best"
    patience: int | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in SELECT_MODES:
            raise ValueError(f"select must be one of {SELECT_MODES}, not {self.mode!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1, not {self.patience}")
        if self.until is not None and not math.isfinite(self.until):
            raise ValueError(f"until must be a finite number, not {self.until}")

    def stops(self, best: BestEpoch) -> bool:
        """True when training should stop after the epoch ``best`` has just seen."""
        if self.patience is not None and best.stale >= self.patience:
            return True
        if self.until is None or best.key is None:
            return False
        value = -best.key[0] if best.higher else best.key[0]
        return value >= self.until if best.higher else value <= self.until


def validation_name(metric: str) -> str:
    """The validation column of a test metric: ``test_loss`` -> ``val_loss``,
    ``task_x`` -> ``val_task_x``."""
    return "val_" + metric.removeprefix("test_")


class BestEpoch:
    """Tracks the best epoch on a validation metric and keeps a copy of its weights."""

    def __init__(self, metric: str, higher_is_better: bool) -> None:
        self.metric, self.higher = metric, higher_is_better
        self.epoch: int | None = None
        self.key: tuple[float, float] | None = None
        self.weights: dict[str, torch.Tensor] | None = None
        self.stale = 0  # epochs since the last improvement

    def update(self, row: dict[str, Any], net: torch.nn.Module) -> bool:
        """Record epoch ``row``; True when it is the best so far (its weights are copied)."""
        value = row.get(self.metric)
        value = math.nan if value is None else float(value)
        if math.isnan(value):
            self.stale += 1
            return False
        key = (-value if self.higher else value, float(row.get("val_loss", math.nan)))
        if self.key is not None and not key < self.key:
            self.stale += 1
            return False
        self.epoch, self.key, self.stale = row["epoch"], key, 0
        self.weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return True


def train_cell(
    task: Task,
    model: Model,
    seed: int,
    device: torch.device,
    recipe: Recipe,
    *,
    keep_weights: bool = False,
    selection: Selection = Selection(),
    evaluate_test: bool = True,
) -> CellOutcome:
    """Train ``model`` on ``task`` with ``seed``, select an epoch on validation, measure it.

    The curve holds training and validation figures per epoch; the test split is evaluated
    once, on the selected model, and not at all with ``evaluate_test=False`` (the record then
    holds no test metric: what hyperparameter search needs). Raises :class:`Diverged`, or
    :class:`~harness.training.contract.ContractError` before training when the task's data or the
    model's first outputs do not fit the task's shape.
    """
    data, net = prepare(task, model, seed, device, recipe)
    best = BestEpoch(validation_name(task.primary_metric), task.higher_is_better)
    curve, train_seconds = fit(net, task, data, recipe, seed, device, best, selection)
    return conclude(
        task,
        net,
        data,
        recipe,
        curve,
        best,
        train_seconds,
        selection=selection,
        keep_weights=keep_weights,
        evaluate_test=evaluate_test,
    )


def prepare(
    task: Task, model: Model, seed: int, device: torch.device, recipe: Recipe
) -> tuple[TaskData, torch.nn.Module]:
    """A cell's checked data (validation carved out where the task has none) and its freshly
    initialized network, both from ``seed`` and in this order, so a seed starts the same
    however it is trained (alone or together with other seeds)."""
    torch.manual_seed(seed)
    shape = task.shape
    data = task.make_data(seed)
    check_data(shape, data, task.scored_steps)  # before any training: blames the side at fault
    data, _ = with_validation(data)
    data = data.to(device)
    if shape.length is None:  # the model learns the length from the data when the task is silent
        shape = dataclasses.replace(shape, length=int(data.train_inputs.shape[1]))
    net = model.make(shape, recipe.hidden_size, recipe.num_layers).to(device)
    check_first_forward(net, shape, data.train_inputs, recipe.batch_size, recipe.carry_state)
    return data, net


def conclude(
    task: Task,
    net: torch.nn.Module,
    data: TaskData,
    recipe: Recipe,
    curve: list[dict[str, Any]],
    best: BestEpoch,
    train_seconds: float,
    *,
    selection: Selection = Selection(),
    keep_weights: bool = False,
    evaluate_test: bool = True,
) -> CellOutcome:
    """The selected epoch's weights restored, its figures, and the one test evaluation."""
    selected = curve[-1]
    if selection.mode == "best" and best.weights is not None:
        net.load_state_dict(best.weights)
        selected = curve[best.epoch - 1]

    net.eval()
    scored, tolerance = task.scored_steps, task.accuracy_tolerance
    train = score(
        net, data.train_inputs, data.train_targets, task.shape.output_kind, tolerance, scored
    )
    metrics: dict[str, Any] = {
        "train_loss": train["loss"],
        "train_perplexity": train["perplexity"],
        "train_accuracy": train["accuracy"],
        **{k: v for k, v in selected.items() if k.startswith("val_")},
        "best_epoch": best.epoch,
        "selected_epoch": selected["epoch"],
        "epochs_run": len(curve),
        "stopped_early": len(curve) < recipe.epochs,
        "test_evaluations": 0,
        "params": sum(p.numel() for p in net.parameters()),
        "train_seconds": train_seconds,  # training wall time (speed: the timing phase)
    }
    samples: dict[str, Any] = {}
    if evaluate_test:
        test, extra = evaluate_on(net, task, data, curve)
        samples = extra.pop("samples", {}) or {}
        metrics.update(
            test_loss=test["loss"],
            test_perplexity=test["perplexity"],
            test_accuracy=test["accuracy"],
            test_evaluations=1,
            **{f"task_{k}": v for k, v in extra.items()},
        )
    weights = None
    if keep_weights:
        weights = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return CellOutcome(metrics=metrics, curve=curve, samples=samples, state_dict=weights)


def fit(
    net: torch.nn.Module,
    task: Task,
    data: TaskData,
    recipe: Recipe,
    seed: int,
    device: torch.device,
    best: BestEpoch,
    selection: Selection | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Train epoch by epoch, validating after each; the curve and the seconds spent training.

    Stops early where ``selection`` says (its ``patience`` or ``until``). Raises
    :class:`Diverged` (with the curve so far) when the training loss stops being finite.
    """
    step = make_training_step(net, recipe, task.shape.output_kind, task.scored_steps)
    scheduler = None
    if recipe.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(step.optimizer, recipe.epochs)
    order = torch.Generator().manual_seed(seed)
    curve: list[dict[str, Any]] = []
    train_seconds = 0.0
    for epoch in range(1, recipe.epochs + 1):
        net.train()
        synchronize(device)
        started = time.perf_counter()
        epoch_loss = train_epoch(step, data, recipe, order, device)
        synchronize(device)
        train_seconds += time.perf_counter() - started
        if scheduler is not None:
            scheduler.step()
        net.eval()
        row = {"epoch": epoch, "train_loss": epoch_loss, **validate(net, task, data, curve)}
        curve.append(row)
        if not math.isfinite(epoch_loss):
            raise Diverged(f"training loss became {epoch_loss} at epoch {epoch}", curve)
        best.update(row, net)
        if selection is not None and selection.stops(best):
            break
    return curve, train_seconds


def train_epoch(
    step: Any, data: TaskData, recipe: Recipe, order: torch.Generator, device: torch.device
) -> float:
    """One pass over the training data in batches; the mean training loss."""
    n_train = data.train_inputs.shape[0]
    # a carried state needs the stream order; independent windows are shuffled
    shuffled = not recipe.carry_state
    perm = torch.randperm(n_train, generator=order) if shuffled else torch.arange(n_train)
    total = torch.zeros((), device=device)
    state = None
    for first in range(0, n_train, recipe.batch_size):
        index = perm[first : first + recipe.batch_size].to(device)
        x, y = data.train_inputs[index], data.train_targets[index]
        if len(index) != recipe.batch_size:  # a short last batch: the streams no longer line up
            state = None
        loss, state = step(x, y, state)
        state = detach_state(state) if recipe.carry_state else None
        total += loss * len(index)
    return float(total) / n_train


def validate(
    net: torch.nn.Module, task: Task, data: TaskData, curve: list[dict[str, Any]]
) -> dict[str, Any]:
    """Validation figures of ``net``: loss, perplexity, accuracy and, when the task ranks by a
    metric of its own, that metric (``val_task_<key>``)."""
    figures = score(
        net,
        data.val_inputs,
        data.val_targets,
        task.shape.output_kind,
        task.accuracy_tolerance,
        task.scored_steps,
    )
    row = {f"val_{k}": v for k, v in figures.items()}
    if task.primary_metric.startswith("task_"):
        with torch.no_grad():
            extra = task.evaluate(net, data.validation_view(), curve)
        key = task.primary_metric.removeprefix("task_")
        row[validation_name(task.primary_metric)] = extra.get(key)
    return row


def evaluate_on(
    net: torch.nn.Module, task: Task, data: TaskData, curve: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one evaluation on the test split: core figures and the task's own metrics."""
    test = score(
        net,
        data.test_inputs,
        data.test_targets,
        task.shape.output_kind,
        task.accuracy_tolerance,
        task.scored_steps,
    )
    with torch.no_grad():
        extra = dict(task.evaluate(net, data, curve))
    return test, extra

