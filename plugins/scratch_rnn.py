"""The `scratch-rnn` model: an Elman RNN from its own parameters and its own loop over time."""

from harness import Model, hookimpl

HARNESS_API = 1


def build(shape, hidden_size: int, num_layers: int):
    from harness.models.layers import ScratchRNN

    return ScratchRNN(shape, hidden_size, num_layers)


@hookimpl
def register_models(register):
    register(
        Model(
            name="scratch-rnn",
            description="Elman RNN from its own W_xh, W_hh, b_h, W_hy, b_y and a Python time loop",
            build=build,
            trains_across_seeds=True,
        )
    )
