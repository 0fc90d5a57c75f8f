"""The `tcn` model: a small causal temporal convolution network (Bai, Kolter & Koltun 2018).

Not a recurrent network: every output is a function of a fixed window of past inputs (64 steps
with the default six levels), computed by dilated causal convolutions in parallel over time.
It still follows the harness model contract, carrying the window's history as its state.
Torch is imported inside :func:`build` only, so loading the plugin (``harness list``,
``harness --help``) does not import it.
"""

from __future__ import annotations

from typing import Any

from harness import Model, TaskShape, hookimpl

HARNESS_API = 1


def build(shape: TaskShape, hidden_size: int, num_layers: int) -> Any:
    """``hidden_size`` channels; ``num_layers`` convolutions in each of the six residual levels."""
    from harness_longrange.network import CausalTCN

    return CausalTCN(shape, hidden_size, num_layers)


@hookimpl
def register_models(register) -> None:
    register(
        Model(
            name="tcn",
            description=(
                "causal TCN: 6 residual levels of kernel-2 convolutions, dilations 1..32 "
                "(sees the last 64 steps); state = each level's recent inputs"
            ),
            build=build,
        )
    )
