"""A model's carried state, handled the same way wherever the trainer touches it.

A state is ``None``, a tensor, or a (nested) tuple or list of them, members ``None`` allowed
(mambapy's per-layer ``(h, inputs)`` pairs start with ``None``). The trainer never reads a batch
size out of a state: it keeps the state only while batches keep the same size, so a model may
lay its state out batch-first, batch-second or any other way.
"""

from __future__ import annotations

from typing import Any


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried state, whatever its nesting; non-tensors pass as is."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        members = [detach_state(member) for member in state]
        if hasattr(state, "_fields"):  # a namedtuple takes its members one by one
            return type(state)(*members)
        return type(state)(members)
    return state
