"""The `mamba` model: Mamba (selective state space) blocks from ``mambapy``, pure PyTorch
(``pip install 'harness[zoo]'``).

``mambapy.mamba.Mamba(MambaConfig(d_model=hidden_size, n_layers=num_layers, ...))`` between a
token embedding (or a linear projection of values) and a final RMSNorm + linear head, as in
mambapy's ``LM`` (:class:`harness.models.zoo_common.MambaNet`). ``hidden_size`` is d_model,
the residual width; each layer's recurrent state is far larger than a GRU's of the same size:
``h`` is (expand * hidden_size) x d_state, plus the last ``d_conv - 1`` conv inputs.

The state is a tuple of mambapy's own per-layer step caches ``(h, inputs)``, h (batch,
expand * hidden_size, d_state), inputs (batch, expand * hidden_size, d_conv - 1). A one-step
call runs mambapy's ``ResidualBlock.step`` (its recurrent inference); a longer call runs the
parallel computation of ``MambaBlock.forward`` with mambapy's ``pscan`` *from the carried
cache* (:func:`harness.models.zoo_common.mamba_chunk`): the conv reads the cached inputs before
the chunk and ``h`` enters the scan's first step. From no state this is ``Mamba.forward``
exactly, and it returns the cache ``step()`` would have reached, so pieces with the state
carried equal the whole sequence, at the parallel scan's speed (mambapy's ``forward`` itself
takes no initial state and returns none).

Sizes at hidden 16, one layer, a tokens task of vocabulary 8 (8 classes out): ``gru``
(torch.nn.GRU, one-hot in) 1,384 parameters; ``mamba`` with the defaults (d_state 16,
expand 2, d_conv 4, dt_rank ceil(16/16) = 1) 3,656: embedding 128, block 3,376 (in_proj
1,024, conv 160, x_proj 1,056, dt_proj 64, A_log 512, D 32, out_proj 512, norm 16), final
norm 16, head 136.

``d_conv`` must be 2 or more: with 1, mambapy's own ``step()`` carries a stale conv input
(its cache update ``cat([inputs[:, :, 1:], x])`` keeps one input where none is wanted).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import Model, hookimpl, require

HARNESS_API = "1.2"

INSTALL = "pip install 'harness[zoo]'"


@dataclass(frozen=True)
class MambaOptions:
    """The mamba model's options (``-o mamba.NAME=VALUE``)."""

    d_state: int = 16  #: N, the SSM state size per channel
    expand: int = 2  #: E, the inner width is expand * hidden_size
    d_conv: int = 4  #: the causal depthwise conv's kernel size, 2 or more (see below)
    dt_rank: int = 0  #: rank of the step-size projection; 0 means ceil(hidden_size / 16)

    def __post_init__(self) -> None:
        # d_conv 1 is refused: mambapy 1.2.0's step() then keeps a one-input conv cache
        # where it needs none (inputs[:, :, 1:] of an empty cache, plus the new input), so
        # every later step convolves the previous input instead of the current one
        for name, minimum in (("d_state", 1), ("expand", 1), ("d_conv", 2), ("dt_rank", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(
                    f"mamba option {name} must be an integer >= {minimum}, not {value!r}"
                )


def build(shape, hidden_size: int, num_layers: int, options: MambaOptions = MambaOptions()):  # noqa: B008
    """mambapy ``Mamba`` of ``num_layers`` blocks, d_model ``hidden_size``, with a head."""
    if num_layers < 1:
        raise ValueError(f"mamba: num_layers must be >= 1, not {num_layers}")
    from harness.models.zoo_common import MambaNet

    return MambaNet(shape, hidden_size, num_layers, options)


@hookimpl
def register_models(register):
    require("mambapy", install=INSTALL, offers=("mamba",))
    register(
        Model(
            in_default_grid=False,  # heavy: runs when named with -m
            name="mamba",
            description=(
                "Mamba selective SSM blocks (mambapy, pure PyTorch parallel scan), "
                "RMSNorm and linear head; step() cache as state"
            ),
            build=build,
            options=MambaOptions(),
        )
    )
