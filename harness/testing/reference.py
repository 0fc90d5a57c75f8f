"""A tiny model the kit uses to exercise a task's data and metrics, with no plugin enabled.

A task's checks need some network that follows the model contract; the kit brings its own
rather than borrowing a built-in plugin, which a user may have disabled. Torch is imported
inside :func:`build` only.
"""

from __future__ import annotations

from typing import Any

from harness.plugin_api.model import Model
from harness.plugin_api.task import TaskShape


def build(shape: TaskShape, hidden_size: int, num_layers: int) -> Any:
    import torch
    from torch import nn

    class ReferenceGRU(nn.Module):
        """``nn.GRU`` over one-hot or value inputs, then a linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(shape.input_size, hidden_size, num_layers, batch_first=True)
            self.head = nn.Linear(hidden_size, shape.output_size)

        def forward(self, inputs: torch.Tensor, state: Any = None):
            if shape.input_kind == "tokens":
                inputs = nn.functional.one_hot(inputs, shape.input_size).float()
            hidden, state = self.gru(inputs, state)
            return self.head(hidden), state

    return ReferenceGRU()


#: The model :func:`harness.testing.check_task` trains for one epoch on a task's own data.
REFERENCE_MODEL = Model(
    name="kit-reference-gru",
    description="the conformance kit's own small GRU, used to exercise tasks",
    build=build,
)
