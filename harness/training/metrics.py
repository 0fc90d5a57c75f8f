"""Loss, perplexity and accuracy over whole data sets, the same way for every model."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from harness.plugin_api.task import IGNORE_INDEX


def loss_fn(output_kind: str, scored_steps: int | None = None):
    """Cross-entropy for class outputs, mean squared error for value outputs, over every time
    step or only the last ``scored_steps`` of them."""
    if output_kind == "classes":
        criterion = lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))  # noqa: E731
    else:
        criterion = F.mse_loss
    if scored_steps is None:
        return criterion
    return lambda out, y: criterion(out[:, -scored_steps:], y[:, -scored_steps:])


@torch.no_grad()
def predict(net: torch.nn.Module, inputs: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Outputs for all sequences, from a fresh state each, in chunks to bound memory."""
    return torch.cat([net(inputs[i : i + chunk], None)[0] for i in range(0, len(inputs), chunk)])


@torch.no_grad()
def score(
    net: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_kind: str,
    tolerance: float | None = None,
    scored_steps: int | None = None,
) -> dict[str, Any]:
    """``loss``, ``perplexity`` (classes only, exp of mean CE) and ``accuracy``.

    Only the last ``scored_steps`` time steps count when it is given, and for classes only the
    targets that are not ``IGNORE_INDEX`` (cross-entropy skips them by default). Accuracy is
    next-step accuracy for classes; for values it is the fraction of predictions within
    ``tolerance`` of the target, or ``None`` when the task states no tolerance.
    """
    outputs = predict(net, inputs)
    loss = float(loss_fn(output_kind, scored_steps)(outputs, targets))
    if scored_steps is not None:
        outputs, targets = outputs[:, -scored_steps:], targets[:, -scored_steps:]
    if output_kind == "classes":
        scored = targets != IGNORE_INDEX  # a recall task scores only its query positions
        hits = (outputs.argmax(-1) == targets) & scored
        accuracy = float(hits.sum() / scored.sum().clamp(min=1))
        perplexity = math.exp(loss) if loss < 700 else math.inf
        return {"loss": loss, "perplexity": perplexity, "accuracy": accuracy}
    accuracy = None
    if tolerance is not None:
        accuracy = float(((outputs - targets).abs() <= tolerance).float().mean())
    return {"loss": loss, "perplexity": None, "accuracy": accuracy}
