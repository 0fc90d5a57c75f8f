"""The contract between a task, a model and the shared loops, checked before a cell trains.

A model returning one logit too many trains silently and gets ranked; a value output of the
wrong width lets MSE broadcast; held-out targets one step short fail deep inside torch, blamed
on whichever plugin happened to be running. So every cell checks the task's data against its
:class:`~harness.plugin_api.task.TaskShape` and the model's first forward pass against the
same shape, before training, and a broken contract names the side at fault. The conformance kit
(``harness.testing``) applies the same rules, and more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch stays out of start-up
    import torch

    from harness.plugin_api.task import TaskData, TaskShape

TASK, MODEL = "task", "model"
SPLITS = ("train", "test")


class ContractError(Exception):
    """A task or a model broke the contract; ``culprit`` says which (``"task"`` or ``"model"``)."""

    def __init__(self, culprit: str, message: str) -> None:
        super().__init__(message)
        self.culprit = culprit


def data_problem(shape: TaskShape, data: Any, scored_steps: int | None = None) -> str | None:
    """What is wrong with a task's data for its own ``shape``, or ``None``."""
    import torch

    from harness.plugin_api.task import TaskData

    if not isinstance(data, TaskData):
        return f"make_data must return a harness.TaskData, not {type(data).__name__}"
    if (data.val_inputs is None) != (data.val_targets is None):
        return "give both val_inputs and val_targets, or neither (a split is then carved)"
    for split in SPLITS if data.val_inputs is None else ("train", "val", "test"):
        inputs, targets = getattr(data, f"{split}_inputs"), getattr(data, f"{split}_targets")
        for what, tensor in ((f"{split}_inputs", inputs), (f"{split}_targets", targets)):
            if not isinstance(tensor, torch.Tensor):
                return f"{what} must be a torch.Tensor, not {type(tensor).__name__}"
        problem = tensor_problem(
            f"{split}_inputs", inputs, shape.input_kind == "tokens", shape.input_size
        ) or tensor_problem(
            f"{split}_targets",
            targets,
            shape.output_kind == "classes",
            shape.output_size,
            ignorable=True,
        )
        if problem:
            return problem
        if inputs.shape[0] < 1 or inputs.shape[1] < 1:
            return f"{split}_inputs {tuple(inputs.shape)} is empty"
        if targets.shape[:2] != inputs.shape[:2]:
            return (
                f"{split}_targets {tuple(targets.shape)} must have one target per input step "
                f"(inputs are {tuple(inputs.shape)}); the loss is taken at every step"
            )
        if scored_steps is not None and inputs.shape[1] < scored_steps:
            return (
                f"{split}_inputs have {inputs.shape[1]} steps, fewer than scored_steps "
                f"({scored_steps})"
            )
    return None


def tensor_problem(
    what: str, tensor: torch.Tensor, ids: bool, size: int, ignorable: bool = False
) -> str | None:
    """Token ids are (N, T) int64 below ``size``; values are (N, T, ``size``) finite float32.
    ``ignorable`` (class targets): ``IGNORE_INDEX`` marks a position that is not scored, and
    every sequence must keep at least one scored position."""
    import torch

    from harness.plugin_api.task import IGNORE_INDEX

    if ids:
        if tensor.dim() != 2 or tensor.dtype != torch.int64:
            return f"{what} must be (N, T) int64 ids, not {tuple(tensor.shape)} {tensor.dtype}"
        scored = tensor != IGNORE_INDEX if ignorable else torch.ones_like(tensor, dtype=bool)
        ids_seen = tensor[scored]
        if ids_seen.numel() and (int(ids_seen.min()) < 0 or int(ids_seen.max()) >= size):
            extra = f" or {IGNORE_INDEX} (not scored)" if ignorable else ""
            return f"{what} holds ids outside 0..{size - 1} (the shape's size){extra}"
        if ignorable and tensor.numel() and not bool(scored.any(dim=1).all()):
            return f"{what} has a sequence with every target {IGNORE_INDEX}: nothing to score"
        return None
    if tensor.dim() != 3 or tensor.dtype != torch.float32 or tensor.shape[-1] != size:
        return f"{what} must be (N, T, {size}) float32, not {tuple(tensor.shape)} {tensor.dtype}"
    if not torch.isfinite(tensor).all():
        return f"{what} holds NaN or infinite values"
    return None


def output_problem(shape: TaskShape, result: Any, batch: int, steps: int) -> str | None:
    """What is wrong with ``net(inputs, None)``'s result for a (batch, steps) input, or None."""
    import torch

    if not (isinstance(result, tuple) and len(result) == 2):
        return f"forward must return (outputs, state), not {type(result).__name__}"
    outputs = result[0]
    expected = (batch, steps, shape.output_size)
    if not isinstance(outputs, torch.Tensor):
        return f"outputs must be a tensor {expected}, not {type(outputs).__name__}"
    if tuple(outputs.shape) != expected:
        what = "logits over" if shape.output_kind == "classes" else "values of"
        return (
            f"outputs must be (batch, time, output_size) = {expected} ({what} "
            f"{shape.output_size} per step), not {tuple(outputs.shape)}"
        )
    if not outputs.is_floating_point():
        return f"outputs must be floats, not {outputs.dtype}"
    return None


def state_problem(state: Any) -> str | None:
    """A state is None, a tensor, or a (nested) tuple/list of them, ``None`` members allowed;
    any layout (the trainer takes the batch size from the inputs, see
    :mod:`harness.training.state`)."""
    import torch

    def odd(value: Any) -> Any:
        """The first thing in ``value`` that is not a tensor or a tuple/list, else None."""
        if isinstance(value, (tuple, list)):
            return next((o for o in map(odd, value) if o is not None), None)
        return None if isinstance(value, torch.Tensor) else value

    def count(value: Any) -> int:
        return sum(map(count, value)) if isinstance(value, (tuple, list)) else 1

    if state is None:
        return None
    if odd(state) is not None:
        kind = type(odd(state)).__name__
        return f"the state holds a {kind}; use tensors, tuples or lists of them"
    if not count(state):
        return "the state is an empty tuple; return None for no state"
    return None


def check_data(shape: TaskShape, data: TaskData, scored_steps: int | None = None) -> None:
    """Raise :class:`ContractError` blaming the task when its data does not fit its shape."""
    problem = data_problem(shape, data, scored_steps)
    if problem:
        raise ContractError(TASK, problem)


def check_first_forward(
    net: Any, shape: TaskShape, inputs: torch.Tensor, batch_size: int, carry_state: bool
) -> None:
    """One forward pass on the first training batch, checked against the shape, before training.

    It runs in eval mode (no dropout draws, no batch-norm statistics updated) under
    ``no_grad``, with the CPU random state restored afterwards, so the training that follows is
    the same as without the check, on any device.
    """
    import torch

    batch = inputs[:batch_size]
    module = net if isinstance(net, torch.nn.Module) else None
    training = module is not None and module.training
    try:
        if module is not None:
            module.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            result = net(batch, None)
    finally:
        if module is not None:
            module.train(training)
    problem = output_problem(shape, result, batch.shape[0], batch.shape[1])
    problem = problem or state_problem(result[1])
    if problem:
        raise ContractError(MODEL, problem)
