"""Equal-size models: the hidden size that brings a model's parameter count closest to a target.

Comparing a 4-gate LSTM with a plain RNN at the same hidden size gives the LSTM about four times
the parameters; with ``--params N`` every model gets the hidden size whose parameter count is
closest to N instead (the Long Range Arena rule), so a ranking compares architectures, not sizes.
"""

from __future__ import annotations

from harness.plugin_api.model import Model
from harness.plugin_api.task import TaskShape

#: No search goes past this hidden size (a target that needs more is out of reach).
MAX_HIDDEN = 1 << 16


def count_params(model: Model, shape: TaskShape, hidden_size: int, num_layers: int) -> int:
    """Parameters of ``model`` built for ``shape``; built on torch's meta device, so even a
    large candidate costs no memory (a model that cannot be built there is built on the CPU)."""
    import torch

    try:
        with torch.device("meta"):
            net = model.make(shape, hidden_size, num_layers)
    except Exception:  # e.g. a build that copies data from real tensors
        net = model.make(shape, hidden_size, num_layers)
    return sum(p.numel() for p in net.parameters())


def hidden_for_params(
    model: Model, shape: TaskShape, target: int, num_layers: int = 1
) -> tuple[int, int]:
    """The hidden size whose parameter count is closest to ``target`` (the smaller one on a
    tie), and that count. Assumes the count grows with the hidden size, as it does for every
    recurrent model; doubling then bisecting needs about 2 log2(hidden) builds."""
    if target < 1:
        raise ValueError(f"params must be a positive integer, not {target}")

    def count(hidden: int) -> int:
        return count_params(model, shape, hidden, num_layers)

    high = 1
    while count(high) < target and high < MAX_HIDDEN:
        high *= 2
    low = high // 2 if high > 1 else 1
    while low < high:  # the smallest hidden size with count >= target, within [low, high]
        middle = (low + high) // 2
        if count(middle) >= target:
            high = middle
        else:
            low = middle + 1
    candidates = [high - 1, high] if high > 1 else [high]
    best = min(candidates, key=lambda h: (abs(count(h) - target), h))
    return best, count(best)
