"""The `gru` model: torch.nn.GRU over one-hot or value inputs, linear head."""

from harness import Model, hookimpl

HARNESS_API = 1


def build(shape, hidden_size: int, num_layers: int):
    from torch import nn

    from harness.models.layers import TorchRecurrent

    return TorchRecurrent(nn.GRU, shape, hidden_size, num_layers)


@hookimpl
def register_models(register):
    register(
        Model(
            name="gru",
            description="torch.nn.GRU over one-hot or value inputs, linear head",
            build=build,
            trains_across_seeds=True,
        )
    )
