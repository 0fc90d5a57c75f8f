"""One cell: train one model on one task with one seed on one device, and measure it.

This is the single training loop every model shares. It returns plain data (a metrics row,
the per-epoch curve, plot samples and, on request, the ``state_dict``) so a cell can run in
another process and its result can be pickled back.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.contract import check_data, check_first_forward
from harness.device import synchronize
from harness.metrics import loss_fn, score
from harness.model import Model
from harness.task import Recipe, Task


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


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried state (tensor, tuple of tensors, or None)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


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


def train_cell(
    task: Task,
    model: Model,
    seed: int,
    device: torch.device,
    recipe: Recipe,
    *,
    keep_weights: bool = False,
) -> CellOutcome:
    """Train ``model`` on ``task`` with ``seed`` and measure it.

    Raises :class:`Diverged`, or :class:`~harness.contract.ContractError` before training when
    the task's data or the model's first outputs do not fit the task's shape.
    """
    torch.manual_seed(seed)
    shape = task.shape
    scored = task.scored_steps
    data = task.make_data(seed)
    check_data(shape, data, scored)  # before any training: a broken contract blames its side
    data = data.to(device)
    net = model.build(shape, recipe.hidden_size, recipe.num_layers).to(device)
    check_first_forward(net, shape, data.train_inputs, recipe.batch_size, recipe.carry_state)
    step = make_training_step(net, recipe, shape.output_kind, scored)
    scheduler = None
    if recipe.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(step.optimizer, recipe.epochs)
    tolerance = task.accuracy_tolerance
    n_train, steps_per_seq = data.train_inputs.shape[0], data.train_inputs.shape[1]
    order = torch.Generator().manual_seed(seed)

    curve: list[dict[str, Any]] = []
    train_seconds = 0.0
    for epoch in range(1, recipe.epochs + 1):
        net.train()
        if recipe.carry_state:
            perm = torch.arange(n_train)
        else:
            perm = torch.randperm(n_train, generator=order)
        total = torch.zeros((), device=device)
        state = None
        synchronize(device)
        started = time.perf_counter()
        for first in range(0, n_train, recipe.batch_size):
            index = perm[first : first + recipe.batch_size].to(device)
            x, y = data.train_inputs[index], data.train_targets[index]
            if not recipe.carry_state or state is not None and _batch_of(state) != len(index):
                state = None
            loss, state = step(x, y, state)
            state = detach_state(state) if recipe.carry_state else None
            total += loss * len(index)
        synchronize(device)
        train_seconds += time.perf_counter() - started
        if scheduler is not None:
            scheduler.step()
        epoch_loss = float(total) / n_train
        net.eval()
        held_out = score(
            net, data.test_inputs, data.test_targets, shape.output_kind, tolerance, scored
        )
        curve.append(
            {
                "epoch": epoch,
                "train_loss": epoch_loss,
                "test_loss": held_out["loss"],
                "test_accuracy": held_out["accuracy"],
            }
        )
        if not math.isfinite(epoch_loss):
            raise Diverged(f"training loss became {epoch_loss} at epoch {epoch}", curve)

    net.eval()
    train = score(net, data.train_inputs, data.train_targets, shape.output_kind, tolerance, scored)
    test = score(net, data.test_inputs, data.test_targets, shape.output_kind, tolerance, scored)
    with torch.no_grad():
        extra = dict(task.evaluate(net, data, curve))
    samples = extra.pop("samples", {}) or {}
    infer = _time_inference(net, data.test_inputs, recipe.batch_size, device)
    tokens_trained = recipe.epochs * n_train * steps_per_seq
    metrics: dict[str, Any] = {
        "train_loss": train["loss"],
        "test_loss": test["loss"],
        "train_perplexity": train["perplexity"],
        "test_perplexity": test["perplexity"],
        "train_accuracy": train["accuracy"],
        "test_accuracy": test["accuracy"],
        "params": sum(p.numel() for p in net.parameters()),
        "train_seconds": train_seconds,
        "train_throughput": tokens_trained / train_seconds if train_seconds > 0 else None,
        "infer_throughput": infer["throughput"],
        "infer_ms_per_step": infer["ms_per_step"],
        "epochs_run": len(curve),
        **{f"task_{k}": v for k, v in extra.items()},
    }
    weights = None
    if keep_weights:
        weights = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return CellOutcome(metrics=metrics, curve=curve, samples=samples, state_dict=weights)


def _batch_of(state: Any) -> int:
    tensor = state if isinstance(state, torch.Tensor) else state[0]
    return tensor.shape[1] if tensor.dim() == 3 else tensor.shape[0]


@torch.no_grad()
def _time_inference(
    net: torch.nn.Module,
    inputs: torch.Tensor,
    batch_size: int,
    device: torch.device,
    repeats: int = 5,
) -> dict[str, float]:
    """Forward-only speed on one held-out batch: warm up, then the median of timed repeats."""
    batch = inputs[:batch_size]
    net(batch, None)  # warm-up
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        net(batch, None)
        synchronize(device)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    steps = batch.shape[1]
    return {
        "throughput": batch.shape[0] * steps / median if median > 0 else math.inf,
        "ms_per_step": 1000.0 * median / steps,
    }
