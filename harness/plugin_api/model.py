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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.plugin_api.task import INPUT_KINDS, TaskShape

Builder = Callable[[TaskShape, int, int], Any]


@dataclass(frozen=True)
class Model:
    """A model plugin's registration.

    ``build(shape, hidden_size, num_layers)`` returns a ``torch.nn.Module`` following the contract
    above. ``input_kinds`` lists the task input kinds it can serve; for any other, the runner
    records the cell as not applicable with ``cannot_serve``'s reason.

    ``options`` (API 1.2): a dataclass instance whose fields are the model's options (a
    Transformer's heads and context, a CfC's backbone), set with ``-o MODEL.FIELD=VALUE`` or
    ``[tool.harness.options.MODEL]``; ``build`` then takes them as a fourth argument. Validate
    them in the dataclass's ``__post_init__`` (a ``ValueError`` becomes one line, exit 2).
    ``limits(shape, options)``: why the model cannot serve a task of ``shape`` (its
    ``length`` above the context, say), or ``None``; such a pair is "not applicable".

    ``in_default_grid`` (API 1.2): ``False`` for a model that runs only when named with ``-m``
    (a heavy wrapped package), so a plain ``harness run`` stays fast once it is installed.

    ``search`` (API 1.2): the options `harness tune` may search, option name ->
    :class:`~harness.plugin_api.task.LogUniform` or :class:`~harness.plugin_api.task.Choice`
    (searched beside the task's recipe fields, as ``model.NAME``).

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
    options: Any = None
    limits: Callable[[TaskShape, Any], str | None] | None = None
    in_default_grid: bool = True
    search: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_kinds", frozenset(self.input_kinds))
        unknown = self.input_kinds - set(INPUT_KINDS)
        if unknown:
            raise ValueError(f"model {self.name!r}: unknown input kinds {sorted(unknown)}")
        if not callable(self.build):
            raise ValueError(f"model {self.name!r}: build must be callable")
        if self.options is not None and not dataclasses.is_dataclass(self.options):
            raise ValueError(
                f"model {self.name!r}: options must be a dataclass instance (its fields are the "
                f"options), not {type(self.options).__name__}"
            )
        if self.limits is not None and not callable(self.limits):
            raise ValueError(f"model {self.name!r}: limits must be callable")
        if self.search:
            from harness.plugin_api.task import Choice, LogUniform

            fields = set(self.option_values())
            for key, dimension in dict(self.search).items():
                if key not in fields:
                    raise ValueError(f"model {self.name!r}: search names no option {key!r}")
                if not isinstance(dimension, (LogUniform, Choice)):
                    raise ValueError(f"model {self.name!r}: search {key!r} must be a dimension")

    def make(self, shape: TaskShape, hidden_size: int, num_layers: int) -> Any:
        """The network for ``shape``: ``build(shape, hidden_size, num_layers)``, and with
        options declared, ``build(shape, hidden_size, num_layers, options)``. What the harness
        calls everywhere it builds a model."""
        if self.options is None:
            return self.build(shape, hidden_size, num_layers)
        return self.build(shape, hidden_size, num_layers, self.options)

    def option_values(self) -> dict[str, Any]:
        """The model's options (its options dataclass's fields) as a plain dict."""
        return {} if self.options is None else dataclasses.asdict(self.options)

    def with_options(self, **options: Any) -> Model:
        """A copy with some options replaced (strings converted to each field's type); a
        ``ValueError`` names the model and the option, also for a value the options' own
        checks refuse."""
        if not options:
            return self
        if self.options is None:
            raise ValueError(f"model {self.name!r} has no options (it declares none)")
        from harness.plugin_api.task import converted_options

        subject = f"model {self.name!r}"
        values = converted_options(self.options, subject, options)
        try:
            chosen = dataclasses.replace(self.options, **values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{subject}: {exc}") from None
        return dataclasses.replace(self, options=chosen)

    def cannot_serve(self, shape: TaskShape) -> str | None:
        """Why this model cannot serve a task of ``shape``, or ``None`` when it can: an input
        kind it does not take, or what its ``limits`` say (e.g. a sequence longer than a
        Transformer's context)."""
        if shape.input_kind not in self.input_kinds:
            kinds = " or ".join(sorted(self.input_kinds))
            return f"{self.name} takes {kinds} inputs; the task's inputs are {shape.input_kind}"
        if self.limits is not None:
            return self.limits(shape, self.options)
        return None
