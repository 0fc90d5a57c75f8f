"""Networks for the ``harness[zoo]`` model plugins: architectures from PyPI behind the contract.

Imported lazily from each zoo plugin's ``build`` (like :mod:`harness.models.layers`), so that
``harness list`` imports neither torch nor the wrapped packages; each network imports its own
package (ncps, minGRU_pytorch, mambapy) when it is built. Every network follows the model
contract in :mod:`harness.plugin_api.model`::

    outputs, state = net(inputs, state=None)

and feeding a sequence in pieces with the state carried equals feeding it whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.layers import InputEncoder
from harness.plugin_api.task import TaskShape


def front(shape: TaskShape, width: int) -> nn.Module:
    """Token ids through ``nn.Embedding(input_size, width)``; values through a linear map."""
    if shape.input_kind == "tokens":
        return nn.Embedding(shape.input_size, width)
    return nn.Linear(shape.input_size, width)


# --------------------------------------------------------------------------------------------
# ncps: CfC and LTC


class NcpsStack(nn.Module):
    """``num_layers`` ncps RNNs (``ncps.torch.CfC`` or ``ncps.torch.LTC``), each with
    ``hidden_size`` units, over one-hot (tokens) or raw (values) inputs, then a linear head.

    The inputs reach the first layer as the built-in ``gru`` gets them (one-hot or as is), so
    ``cfc``/``ltc``/``gru`` of one hidden size differ only in the recurrent cell. The state is a
    tuple with one entry per layer: ncps's own ``hx``, a (batch, units) tensor, or the pair
    ``(h, c)`` with ``mixed_memory``.
    """

    def __init__(self, shape: TaskShape, layers: list[nn.Module], hidden_size: int) -> None:
        super().__init__()
        self.encode = InputEncoder(shape)
        self.rnns = nn.ModuleList(layers)
        self.head = nn.Linear(hidden_size, shape.output_size)

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.encode(inputs)
        if state is None:
            state = (None,) * len(self.rnns)
        finals = []
        for rnn, hx in zip(self.rnns, state):
            x, hx = rnn(x, hx)
            finals.append(hx)
        return self.head(x), tuple(finals)


def cfc_stack(shape: TaskShape, hidden_size: int, num_layers: int, options) -> NcpsStack:
    from ncps.torch import CfC

    layers = [
        CfC(
            shape.input_size if i == 0 else hidden_size,
            hidden_size,
            return_sequences=True,
            batch_first=True,
            mixed_memory=options.mixed_memory,
            mode=options.mode,
            activation=options.activation,
            backbone_units=options.backbone_units or hidden_size,
            backbone_layers=options.backbone_layers,
            backbone_dropout=float(options.backbone_dropout),
        )
        for i in range(num_layers)
    ]
    return NcpsStack(shape, layers, hidden_size)


def ltc_stack(shape: TaskShape, hidden_size: int, num_layers: int, options) -> NcpsStack:
    from ncps.torch import LTC
    from ncps.wirings import FullyConnected

    layers = []
    for i in range(num_layers):
        # ncps draws the synapse polarities (erev) from numpy with a fixed seed (1111): take the
        # seed from torch's generator instead, so each harness seed gets its own polarities
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        layers.append(
            LTC(
                shape.input_size if i == 0 else hidden_size,
                FullyConnected(hidden_size, erev_init_seed=seed),
                return_sequences=True,
                batch_first=True,
                mixed_memory=options.mixed_memory,
                ode_unfolds=options.ode_unfolds,
            )
        )
    return NcpsStack(shape, layers, hidden_size)


# --------------------------------------------------------------------------------------------
# minGRU_pytorch: minGRU and minLSTM


def g_inverse(h: torch.Tensor) -> torch.Tensor:
    """The ``x`` with ``minGRU_pytorch``'s ``g(x) == h`` (for h > 0), so ``log_g(x) == log h``.

    minLSTM's parallel forward takes a carried hidden state through ``log_g(prev_hidden)``
    (minGRU_pytorch 0.2.1, minLSTM.py), though the state it returns is already ``g``-space
    (positive): the carried state would be counted as ``h + 0.5``. Passing ``g_inverse(h)``
    makes ``log_g`` give ``log h``, so the package's own scan continues the sequence exactly.
    """
    return torch.where(h >= 0.5, h - 0.5, torch.logit(h.clamp(max=0.5)))


_MINLSTM_NEEDS_G_INVERSE: bool | None = None


def minlstm_needs_g_inverse() -> bool:
    """Whether the installed minLSTM's parallel forward reads a carried state through
    ``log_g`` (the 0.2.1 behaviour, see :func:`g_inverse`) rather than ``log``: probed once on
    a one-unit layer against the package's own single-step path (which is right), so a fixed
    release is used as is."""
    global _MINLSTM_NEEDS_G_INVERSE
    if _MINLSTM_NEEDS_G_INVERSE is None:
        from minGRU_pytorch.minLSTM import minLSTM

        with torch.random.fork_rng(devices=[]), torch.no_grad():  # leave the seeded RNG be
            layer = minLSTM(1)
            layer.to_hidden_and_f_i_gate.weight.copy_(torch.tensor([[1.0], [0.5], [-0.5]]))
            x = torch.tensor([[[0.3], [-0.7]]])
            prev = torch.full((1, 1, 1), 0.25)
            parallel = layer(x, prev)
            first, h = layer(x[:, :1], prev, return_next_prev_hidden=True)
            second = layer(x[:, 1:], h)
            stepped = torch.cat([first, second], dim=1)
        _MINLSTM_NEEDS_G_INVERSE = not torch.allclose(parallel, stepped, atol=1e-6)
    return _MINLSTM_NEEDS_G_INVERSE


class MinRNNNet(nn.Module):
    """A stack of ``minGRU_pytorch`` minGRU (or minLSTM) layers in ``minLM``'s block layout.

    Embedding (tokens) or linear projection (values) to ``hidden_size``; per layer
    ``x = x + rnn(RMSNorm(x))`` and, with ``ff_mult > 0``, ``x = x + FeedForward(RMSNorm(x))``
    (minLM's GELU MLP of ``ff_mult * hidden_size``); a final RMSNorm and a linear head. The state
    is a tuple with one (batch, 1, hidden_size * expansion) tensor per layer: the package's
    own ``next_prev_hidden``. A call of one step takes the package's sequential path, longer
    calls its parallel (log-space) scan.
    """

    def __init__(
        self, shape: TaskShape, hidden_size: int, num_layers: int, options, lstm: bool
    ) -> None:
        super().__init__()
        from minGRU_pytorch.minGRU import minGRU
        from minGRU_pytorch.minLM import FeedForward
        from minGRU_pytorch.minLSTM import minLSTM

        cell = minLSTM if lstm else minGRU
        self.lstm = lstm
        self.fix = lstm and minlstm_needs_g_inverse()  # probed at build, not inside a forward
        self.embed = front(shape, hidden_size)
        self.norms = nn.ModuleList(nn.RMSNorm(hidden_size) for _ in range(num_layers))
        self.rnns = nn.ModuleList(
            cell(hidden_size, expansion_factor=float(options.expansion)) for _ in range(num_layers)
        )
        ff = options.ff_mult > 0
        self.ff_norms = nn.ModuleList(
            nn.RMSNorm(hidden_size) if ff else nn.Identity() for _ in range(num_layers)
        )
        self.ffs = nn.ModuleList(
            FeedForward(hidden_size, mult=options.ff_mult) if ff else nn.Identity()
            for _ in range(num_layers)
        )
        self.ff = ff
        self.norm = nn.RMSNorm(hidden_size)
        self.head = nn.Linear(hidden_size, shape.output_size)

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.embed(inputs)
        steps = x.shape[1]
        if state is None:
            state = (None,) * len(self.rnns)
        fix = self.fix and steps > 1
        finals = []
        for norm, rnn, ff_norm, ff, prev in zip(
            self.norms, self.rnns, self.ff_norms, self.ffs, state
        ):
            carried = g_inverse(prev) if fix and prev is not None else prev
            out, hidden = rnn(norm(x), carried, return_next_prev_hidden=True)
            x = x + out
            if self.ff:
                x = x + ff(ff_norm(x))
            finals.append(hidden)
        return self.head(self.norm(x)), tuple(finals)


# --------------------------------------------------------------------------------------------
# mambapy: Mamba


def mamba_chunk(block: nn.Module, x: torch.Tensor, cache):
    """One mambapy ``ResidualBlock`` over a chunk (batch, T, d_model) from a carried cache.

    The parallel computation of ``MambaBlock.forward`` (same modules, same order, mambapy's
    ``pscan``), started from the cache that ``MambaBlock.step`` keeps: ``h`` (batch, ED, N),
    the SSM state, and ``inputs`` (batch, ED, d_conv - 1), the last conv inputs. The conv runs
    over the cached inputs followed by the chunk; ``h`` enters as ``dA_1 * h`` added to the
    first step's ``B x`` (``h_1 = dA_1 h_0 + B_1 x_1``), so the scan from zero is exact. From a
    zero cache this is ``ResidualBlock.forward``; one step of it is ``ResidualBlock.step``.
    Returns the block's output and the cache after the chunk.
    """
    from mambapy.pscan import pscan

    mixer, config = block.mixer, block.mixer.config
    h0, inputs = cache
    steps, width = x.shape[1], config.d_conv - 1

    xz = mixer.in_proj(block.norm(x))  # (B, T, 2*ED)
    xs, z = xz.chunk(2, dim=-1)
    window = torch.cat([inputs, xs.transpose(1, 2)], dim=2)  # (B, ED, d_conv-1+T)
    conv = mixer.conv1d(window)[:, :, width : width + steps]  # conv1d pads d_conv-1 both sides
    xs = F.silu(conv.transpose(1, 2))  # (B, T, ED)

    A = -torch.exp(mixer.A_log.float())  # (ED, N)
    D = mixer.D.float()
    delta, B, C = torch.split(
        mixer.x_proj(xs), [config.dt_rank, config.d_state, config.d_state], dim=-1
    )
    delta, B, C = mixer._apply_layernorms(delta, B, C)
    delta = (mixer.dt_proj.weight @ delta.transpose(1, 2)).transpose(1, 2)
    delta = F.softplus(delta + mixer.dt_proj.bias)  # (B, T, ED)
    deltaA = torch.exp(delta.unsqueeze(-1) * A)  # (B, T, ED, N)
    BX = delta.unsqueeze(-1) * B.unsqueeze(2) * xs.unsqueeze(-1)  # (B, T, ED, N)
    if h0 is not None:
        BX = torch.cat([BX[:, :1] + deltaA[:, :1] * h0.unsqueeze(1), BX[:, 1:]], dim=1)
    hs = pscan(deltaA, BX)  # (B, T, ED, N)
    y = (hs @ C.unsqueeze(-1)).squeeze(3) + D * xs  # (B, T, ED)

    out = mixer.out_proj(y * F.silu(z))
    return out + x, (hs[:, -1], window[:, :, window.shape[2] - width :])


class MambaNet(nn.Module):
    """mambapy's ``Mamba`` (``num_layers`` residual Mamba blocks of ``d_model = hidden_size``)
    between an embedding (tokens) or linear projection (values) and a final RMSNorm + linear
    head, as in mambapy's ``LM``.

    The state is a tuple with one ``(h, inputs)`` pair per layer, exactly mambapy's step
    cache: ``h`` (batch, expand * hidden_size, d_state), ``inputs`` (batch, expand *
    hidden_size, d_conv - 1). A one-step call runs mambapy's own ``ResidualBlock.step``; a
    longer one runs :func:`mamba_chunk`, the parallel scan from the carried cache.
    """

    def __init__(self, shape: TaskShape, hidden_size: int, num_layers: int, options) -> None:
        super().__init__()
        from mambapy.mamba import Mamba, MambaConfig, RMSNorm

        config = MambaConfig(
            d_model=hidden_size,
            n_layers=num_layers,
            dt_rank=options.dt_rank or "auto",
            d_state=options.d_state,
            expand_factor=options.expand,
            d_conv=options.d_conv,
            pscan=True,
            use_cuda=False,
        )
        self.embed = front(shape, hidden_size)
        self.mamba = Mamba(config)
        self.norm = RMSNorm(hidden_size, config.rms_norm_eps)
        self.head = nn.Linear(hidden_size, shape.output_size)

    def empty_cache(self, x: torch.Tensor):
        config = self.mamba.config
        return (None, x.new_zeros(x.shape[0], config.d_inner, config.d_conv - 1))

    def forward(self, inputs: torch.Tensor, state=None):
        x = self.embed(inputs)
        if state is None:
            state = [self.empty_cache(x) for _ in self.mamba.layers]
        finals = []
        for block, cache in zip(self.mamba.layers, state):
            if x.shape[1] == 1:
                y, cache = block.step(x[:, 0], tuple(cache))
                x = y.unsqueeze(1)
            else:
                x, cache = mamba_chunk(block, x, cache)
            finals.append(tuple(cache))
        return self.head(self.norm(x)), tuple(finals)
