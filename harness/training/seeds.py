"""Several seeds of one task x model pair trained in one batched computation (torch.func).

Each seed keeps its own network (its own initialization), its own data and data order; their
parameters are stacked along a new leading dimension and one ``vmap(grad_and_value(...))`` call
computes every seed's loss and gradients at once. Gradient clipping is done per seed (each
seed's own global norm), and the optimizers (SGD, Adam, AdamW, RMSprop: element-wise updates)
run once over the stacked tensors, which is the same arithmetic as one optimizer per seed. So
each seed's numbers equal training it alone, up to floating-point rounding.

Validation, epoch selection and the test evaluation go back to the per-seed networks (the
stacked parameters are copied into them after every epoch), because ``vmap`` of a plain
forward pass has no batching rule for torch's fused RNN operators. A seed that diverges or
runs out of patience stops there: its network is no longer updated, while the others train on.

A model opts in with ``Model(trains_across_seeds=True)``; the conformance kit checks the
equality for every model that claims it.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch

from harness.plugin_api.model import Model
from harness.plugin_api.task import Recipe, Task
from harness.training.device import synchronize
from harness.training.metrics import loss_fn
from harness.training.train import (
    BestEpoch,
    CellOutcome,
    Diverged,
    Selection,
    conclude,
    make_optimizer,
    prepare,
    validate,
    validation_name,
)


class SeedStack:
    """The stacked parameters of ``nets`` and a training step over all of them at once."""

    def __init__(
        self,
        nets: list[torch.nn.Module],
        recipe: Recipe,
        output_kind: str,
        scored_steps: int | None = None,
    ) -> None:
        from torch.func import functional_call, grad_and_value, stack_module_state, vmap

        self.nets, self.recipe = nets, recipe
        params, buffers = stack_module_state(nets)
        trained = [name for name, p in nets[0].named_parameters() if p.requires_grad]
        self.params = {name: params[name] for name in trained}
        self.frozen = {name: p for name, p in params.items() if name not in self.params}
        self.buffers = buffers
        base = copy.deepcopy(nets[0]).to("meta").train()  # what every step runs
        criterion = loss_fn(output_kind, scored_steps)

        def loss(params: dict, frozen: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor):
            out, _ = functional_call(base, ({**params, **frozen}, buffers), (x, None))
            return criterion(out, y)

        self._grads = vmap(grad_and_value(loss))
        self.optimizer = make_optimizer(recipe, list(self.params.values()))

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """One training step of every seed on its own batch (``xs[s]``, ``ys[s]``); the losses."""
        grads, losses = self._grads(self.params, self.frozen, self.buffers, xs, ys)
        if self.recipe.clip is not None:
            clip_per_seed(grads, self.recipe.clip)
        for name, param in self.params.items():
            param.grad = grads[name]
        self.optimizer.step()
        return losses.detach()

    @torch.no_grad()
    def unstack(self, seeds: list[int] | None = None) -> None:
        """Copy the current parameters of each seed (by position; default all) into its own
        network."""
        stacked = {**self.params, **self.frozen, **self.buffers}
        for s in range(len(self.nets)) if seeds is None else seeds:
            net = self.nets[s]
            for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
                tensor.copy_(stacked[name][s])


@torch.no_grad()
def clip_per_seed(grads: dict[str, torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` applied to each seed's gradients separately (leading dimension)."""
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], dim=1).norm(dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads.values():
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


def _same_shapes(tensors: list[torch.Tensor]) -> bool:
    return all(t.shape == tensors[0].shape and t.dtype == tensors[0].dtype for t in tensors)


def train_seeds_together(
    task: Task,
    model: Model,
    seeds: list[int],
    device: torch.device,
    recipe: Recipe,
    *,
    selection: Selection | None = None,
    keep_weights: bool = False,
    evaluate_test: bool = True,
) -> list[CellOutcome | Diverged]:
    """Train ``seeds`` of one pair at once; per seed a ``CellOutcome`` or a ``Diverged``.

    Every seed gets what :func:`harness.training.train.train_cell` would give it: its own data,
    initialization and data order, its own validation curve, best epoch, early stop and
    divergence, and one test evaluation of its selected weights. Raises (before any training)
    when the seeds cannot be stacked: data of different shapes, a state carried across batches.
    """
    selection = selection or Selection()
    if recipe.carry_state:
        raise ValueError("a carried state is trained one seed at a time")
    prepared = [prepare(task, model, seed, device, recipe) for seed in seeds]
    datas = [data for data, _ in prepared]
    nets = [net for _, net in prepared]
    for split in ("train_inputs", "train_targets"):
        if not _same_shapes([getattr(d, split) for d in datas]):
            raise ValueError("the seeds' training data differ in shape")
    stack = SeedStack(nets, recipe, task.shape.output_kind, task.scored_steps)
    scheduler = None
    if recipe.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(stack.optimizer, recipe.epochs)
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    primary = validation_name(task.primary_metric)
    bests = [BestEpoch(primary, task.higher_is_better) for _ in seeds]
    curves: list[list[dict[str, Any]]] = [[] for _ in seeds]
    diverged: dict[int, Diverged] = {}
    active = list(range(len(seeds)))  # seeds still training
    n_train = datas[0].train_inputs.shape[0]
    train_seconds = 0.0
    for epoch in range(1, recipe.epochs + 1):
        perms = [torch.randperm(n_train, generator=order) for order in orders]
        total = torch.zeros(len(seeds), device=device)
        synchronize(device)
        started = time.perf_counter()
        for first in range(0, n_train, recipe.batch_size):
            index = [perm[first : first + recipe.batch_size].to(device) for perm in perms]
            xs = torch.stack([d.train_inputs[i] for d, i in zip(datas, index)])
            ys = torch.stack([d.train_targets[i] for d, i in zip(datas, index)])
            total += stack.step(xs, ys) * len(index[0])
        synchronize(device)
        train_seconds += time.perf_counter() - started
        if scheduler is not None:
            scheduler.step()
        stack.unstack(active)
        losses = (total / n_train).tolist()
        for s in list(active):
            nets[s].eval()
            row = {
                "epoch": epoch,
                "train_loss": losses[s],
                **validate(nets[s], task, datas[s], curves[s]),
            }
            curves[s].append(row)
            if not math.isfinite(losses[s]):
                message = f"training loss became {losses[s]} at epoch {epoch}"
                diverged[s] = Diverged(message, curves[s])
                active.remove(s)
                continue
            bests[s].update(row, nets[s])
            if selection.stops(bests[s]):
                active.remove(s)
        if not active:
            break
    share = train_seconds / len(seeds)  # the seeds shared the clock
    return [
        diverged[s]
        if s in diverged
        else conclude(
            task,
            nets[s],
            datas[s],
            recipe,
            curves[s],
            bests[s],
            share,
            selection=selection,
            keep_weights=keep_weights,
            evaluate_test=evaluate_test,
        )
        for s in range(len(seeds))
    ]
