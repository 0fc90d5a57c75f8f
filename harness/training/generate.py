"""One generation loop for every model: warm the state up on a prefix, then feed outputs back.

Works for any module following the model contract (``outputs, state = net(inputs, state)``).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def continue_tokens(net: torch.nn.Module, prefix: list[int], steps: int) -> list[int]:
    """Greedy continuation of ``prefix`` (token ids) by ``steps`` tokens, prefix included."""
    device = next(net.parameters()).device
    tokens = list(prefix)
    logits, state = net(torch.tensor([prefix], device=device), None)
    for _ in range(steps):
        nxt = int(logits[0, -1].argmax())
        tokens.append(nxt)
        logits, state = net(torch.tensor([[nxt]], device=device), state)
    return tokens


@torch.no_grad()
def rollout_values(net: torch.nn.Module, prefix: torch.Tensor, steps: int) -> torch.Tensor:
    """Autoregressive rollout for value tasks whose output feeds back as the next input.

    ``prefix`` is (batch, warmup, features); the state is warmed up on all of it (teacher
    forced), then each prediction is fed back in. Returns (batch, steps, features).
    """
    outputs, state = net(prefix, None)
    step = outputs[:, -1:]
    predictions = [step]
    for _ in range(steps - 1):
        step, state = net(step, state)
        predictions.append(step)
    return torch.cat(predictions, dim=1)
