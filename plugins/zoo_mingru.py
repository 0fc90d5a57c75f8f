"""The `mingru` and `minlstm` models: minGRU / minLSTM ("Were RNNs All We Needed?", Feng et
al. 2024) from ``minGRU-pytorch`` (``pip install 'harness[zoo]'``).

``num_layers`` blocks in the layout of the package's own ``minLM``: ``x + rnn(RMSNorm(x))``
with ``minGRU_pytorch.minGRU`` or ``minGRU_pytorch.minLSTM.minLSTM`` (``minLSTM`` is not
re-exported from the package's top level, but ships in it), then, with ``ff_mult > 0``,
``x + FeedForward(RMSNorm(x))`` (minLM's GELU MLP); token embedding or a linear projection in
front, a final RMSNorm and a linear head (:class:`harness.models.zoo_common.MinRNNNet`).
``hidden_size`` is the residual width ``dim``; each layer's recurrent state has
``hidden_size * expansion`` units (``hidden_size`` with the default ``expansion=1``; with
another, the package adds an output projection back to ``dim``).

The state is a tuple of the package's per-layer ``next_prev_hidden``, (batch, 1, dim_inner).
A one-step call takes the package's sequential path, a longer one its parallel log-space scan
(Heinsen), both continuing from the carried state. minGRU_pytorch 0.2.1's minLSTM reads a
carried state in its parallel path through ``log_g`` instead of ``log`` (the state is already
positive, ``g``-space), so two halves did not equal the whole (max error 0.3 at width 8); the
wrapper hands that path ``g^-1(h)`` (:func:`harness.models.zoo_common.g_inverse`), which makes
the package's scan exact, and probes once whether the installed release still needs it.

Sizes at hidden 16, one layer, a tokens task of vocabulary 8 (8 classes out): ``gru``
(torch.nn.GRU, one-hot in) 1,384 parameters; ``mingru`` 2,952 with the default ``ff_mult=4``
(embedding 128, minGRU 512, norms 48, MLP 2,128, head 136), 808 with ``ff_mult=0``;
``minlstm`` 3,208, or 1,064 with ``ff_mult=0``.

Both claim ``trains_across_seeds``: the forward is linear maps, RMSNorm, GELU, cumsum and
logcumsumexp (all with vmap rules), reads no tensor into Python and draws nothing random, and
the conformance kit's ``check_trains_across_seeds`` passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import Model, hookimpl, require

HARNESS_API = "1.2"

INSTALL = "pip install 'harness[zoo]'"


@dataclass(frozen=True)
class MinRNNOptions:
    """The mingru / minlstm options (``-o mingru.NAME=VALUE``)."""

    expansion: float = 1.0  #: recurrent width per layer = expansion * hidden_size
    ff_mult: int = 4  #: each block's MLP is ff_mult * hidden_size wide; 0 leaves it out

    def __post_init__(self) -> None:
        value = self.expansion
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"option expansion must be a number > 0, not {value!r}")
        value = self.ff_mult
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"option ff_mult must be an integer >= 0, not {value!r}")


def _build(name: str, lstm: bool, shape, hidden_size: int, num_layers: int, options):
    if num_layers < 1:
        raise ValueError(f"{name}: num_layers must be >= 1, not {num_layers}")
    if int(hidden_size * options.expansion) < 1:
        raise ValueError(
            f"{name}: hidden_size {hidden_size} * expansion {options.expansion} is below 1 unit"
        )
    from harness.models.zoo_common import MinRNNNet

    return MinRNNNet(shape, hidden_size, num_layers, options, lstm=lstm)


def build_mingru(shape, hidden_size: int, num_layers: int, options=MinRNNOptions()):  # noqa: B008
    """``num_layers`` minLM-style blocks around ``minGRU_pytorch.minGRU``."""
    return _build("mingru", False, shape, hidden_size, num_layers, options)


def build_minlstm(shape, hidden_size: int, num_layers: int, options=MinRNNOptions()):  # noqa: B008
    """``num_layers`` minLM-style blocks around ``minGRU_pytorch.minLSTM.minLSTM``."""
    return _build("minlstm", True, shape, hidden_size, num_layers, options)


@hookimpl
def register_models(register):
    require("minGRU_pytorch", install=INSTALL, offers=("mingru", "minlstm"))
    register(
        Model(
            in_default_grid=False,  # heavy: runs when named with -m
            name="mingru",
            description=(
                "minGRU (minGRU-pytorch) in minLM residual blocks with RMSNorm and MLP; "
                "parallel log-space scan"
            ),
            build=build_mingru,
            options=MinRNNOptions(),
            trains_across_seeds=True,
        )
    )
    register(
        Model(
            in_default_grid=False,  # heavy: runs when named with -m
            name="minlstm",
            description=(
                "minLSTM (minGRU-pytorch) in minLM residual blocks with RMSNorm and MLP; "
                "parallel log-space scan"
            ),
            build=build_minlstm,
            options=MinRNNOptions(),
            trains_across_seeds=True,
        )
    )
