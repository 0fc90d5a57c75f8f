"""The `embedding-rnn` model: nn.Embedding + nn.RNN + linear head (token inputs only)."""

from harness import Model, hookimpl

HARNESS_API = 1


def build(shape, hidden_size: int, num_layers: int):
    from harness.models.layers import EmbeddingRNN

    return EmbeddingRNN(shape, hidden_size, num_layers)


@hookimpl
def register_models(register):
    register(
        Model(
            name="embedding-rnn",
            description="torch.nn.Embedding + torch.nn.RNN + linear head; token inputs only",
            build=build,
            trains_across_seeds=True,
            input_kinds={"tokens"},
        )
    )
