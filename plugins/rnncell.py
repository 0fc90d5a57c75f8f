"""The `rnncell` model: torch.nn.RNNCell stepped over time in a Python loop."""

from harness import Model, hookimpl

HARNESS_API = 1


def build(shape, hidden_size: int, num_layers: int):
    from harness.models.layers import RNNCellLoop

    return RNNCellLoop(shape, hidden_size, num_layers)


@hookimpl
def register_models(register):
    register(
        Model(
            name="rnncell",
            description="torch.nn.RNNCell stepped in a Python loop, linear head",
            build=build,
            trains_across_seeds=True,
        )
    )
