"""What a model plugin offers: a name, the input kinds it serves, and a builder.

The built module's contract, shared by every model so one training and one generation loop
serve them all::

    outputs, state = net(inputs, state=None)

``inputs`` is (batch, time) int64 for token tasks or (batch, time, features) float for value
tasks; ``outputs`` is (batch, time, output_size); ``state`` is whatever the model carries
between calls (``None`` starts from zero). Feeding two halves of a sequence with the state
carried must equal feeding the whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.task import INPUT_KINDS, TaskShape

Builder = Callable[[TaskShape, int, int], Any]


@dataclass(frozen=True)
class Model:
    """A model plugin's registration.

    ``build(shape, hidden_size, num_layers)`` returns a ``torch.nn.Module`` following the contract
    above. ``input_kinds`` lists the task input kinds it can serve; for any other, the runner
    records the cell as not applicable with ``cannot_serve``'s reason.

    ``trains_across_seeds``: the built network can be trained for several seeds at once with
    ``torch.func`` (``functional_call`` + ``vmap`` over ``grad_and_value`` of stacked
    parameters), so the runner trains a pair's seeds in one batched computation. Claim it only
    when every operator of the forward pass has a vmap batching rule (``nn.RNN`` and ``nn.GRU``
    do; ``nn.LSTM``'s fused CPU kernel does not), no forward reads tensor values into Python
    (``.item()``, ``one_hot``'s range check) and nothing is random (dropout); the conformance
    kit checks that each seed's numbers then equal training it alone.
    """

    name: str
    description: str
    build: Builder
    input_kinds: frozenset[str] = field(default_factory=lambda: frozenset(INPUT_KINDS))
    trains_across_seeds: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_kinds", frozenset(self.input_kinds))
        unknown = self.input_kinds - set(INPUT_KINDS)
        if unknown:
            raise ValueError(f"model {self.name!r}: unknown input kinds {sorted(unknown)}")
        if not callable(self.build):
            raise ValueError(f"model {self.name!r}: build must be callable")

    def cannot_serve(self, shape: TaskShape) -> str | None:
        """Why this model cannot serve a task of ``shape``, or ``None`` when it can."""
        if shape.input_kind not in self.input_kinds:
            kinds = " or ".join(sorted(self.input_kinds))
            return f"{self.name} takes {kinds} inputs; the task's inputs are {shape.input_kind}"
        return None
