"""The `cfc` and `ltc` models: ncps's closed-form continuous-time (CfC) and liquid
time-constant (LTC) RNNs (``pip install 'harness[zoo]'``).

``num_layers`` stacked ``ncps.torch.CfC`` / ``ncps.torch.LTC`` modules with ``hidden_size``
units each (fully connected, no wiring), over one-hot token or raw value inputs like the
built-in ``gru``, then a linear head (:class:`harness.models.zoo_common.NcpsStack`). The state
is a tuple of ncps's own per-layer ``hx``: a (batch, hidden_size) tensor, or ``(h, c)`` with
``mixed_memory``. ncps steps its cell in a Python loop over time, so pieces with the state
carried are exactly the whole sequence; every step has elapsed time 1 (no ``timespans``).

Sizes at hidden 16, one layer, a tokens task of vocabulary 8 (one-hot in, 8 classes out; the
linear head's 136 included): ``gru`` (torch.nn.GRU) 1,384 parameters; ``cfc`` with its
defaults (a backbone of one layer of hidden_size units, then four 16 x 16 heads) 1,624;
``cfc`` with ``backbone_layers=0`` (the heads read ``[x, h]`` directly) 1,736; ``cfc`` with
``mode=pure`` 840; ``ltc`` 1,768 trainable (4 H^2 + 4 I H + 3 H + 2 I + 2 H: sigma, mu, w,
erev per synapse, plus leak, capacitance and the affine input/output maps) and 384 fixed
sparsity-mask entries (``requires_grad=False``), counted by ``parameters()`` but not
trained.

ncps's own default backbone is 128 units whatever the hidden size; here ``backbone_units=0``
(the default) means ``hidden_size`` so the model scales with it. LTC synapse polarities:
ncps draws them from numpy with the fixed seed 1111, the same for every run; here the seed is
drawn from torch's generator, so each harness seed gets its own polarities.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import Model, hookimpl, require

HARNESS_API = "1.2"

INSTALL = "pip install 'harness[zoo]'"
CFC_MODES = ("default", "pure", "no_gate")
ACTIVATIONS = ("lecun_tanh", "tanh", "relu", "gelu", "silu")


def _whole(model: str, name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{model} option {name} must be an integer >= {minimum}, not {value!r}")


def _flag(model: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{model} option {name} must be true or false, not {value!r}")


@dataclass(frozen=True)
class CfCOptions:
    """The cfc model's options (``-o cfc.NAME=VALUE``)."""

    backbone_units: int = 0  #: width of the backbone MLP over [x, h]; 0 means hidden_size
    backbone_layers: int = 1  #: backbone depth; 0 feeds [x, h] to the gates directly
    backbone_dropout: float = 0.0  #: dropout between backbone layers (2 or more); training only
    mode: str = "default"  #: "default" (gated), "pure" (direct ODE solution) or "no_gate"
    activation: str = "lecun_tanh"  #: backbone activation: lecun_tanh, tanh, relu, gelu, silu
    mixed_memory: bool = False  #: add ncps's LSTM memory cell; the state becomes (h, c)

    def __post_init__(self) -> None:
        _whole("cfc", "backbone_units", self.backbone_units, 0)
        _whole("cfc", "backbone_layers", self.backbone_layers, 0)
        dropout = self.backbone_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"cfc option backbone_dropout must be a number, not {dropout!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"cfc option backbone_dropout must be in [0, 1), not {dropout!r}")
        if self.mode not in CFC_MODES:
            raise ValueError(
                f"cfc option mode must be one of {', '.join(CFC_MODES)}, not {self.mode!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"cfc option activation must be one of {', '.join(ACTIVATIONS)}, "
                f"not {self.activation!r}"
            )
        _flag("cfc", "mixed_memory", self.mixed_memory)


@dataclass(frozen=True)
class LTCOptions:
    """The ltc model's options (``-o ltc.NAME=VALUE``)."""

    ode_unfolds: int = 6  #: semi-implicit ODE solver steps per time step
    mixed_memory: bool = False  #: add ncps's LSTM memory cell; the state becomes (h, c)

    def __post_init__(self) -> None:
        _whole("ltc", "ode_unfolds", self.ode_unfolds, 1)
        _flag("ltc", "mixed_memory", self.mixed_memory)


def _layers(model: str, num_layers: int) -> None:
    if num_layers < 1:
        raise ValueError(f"{model}: num_layers must be >= 1, not {num_layers}")


def build_cfc(shape, hidden_size: int, num_layers: int, options: CfCOptions = CfCOptions()):  # noqa: B008
    """``num_layers`` ncps CfC layers of ``hidden_size`` units, then a linear head."""
    _layers("cfc", num_layers)
    from harness.models.zoo_common import cfc_stack

    return cfc_stack(shape, hidden_size, num_layers, options)


def build_ltc(shape, hidden_size: int, num_layers: int, options: LTCOptions = LTCOptions()):  # noqa: B008
    """``num_layers`` ncps LTC layers of ``hidden_size`` fully connected units, then a head."""
    _layers("ltc", num_layers)
    from harness.models.zoo_common import ltc_stack

    return ltc_stack(shape, hidden_size, num_layers, options)


@hookimpl
def register_models(register):
    require("ncps", install=INSTALL, offers=("cfc", "ltc"))
    register(
        Model(
            in_default_grid=False,  # heavy: runs when named with -m
            name="cfc",
            description=(
                "ncps closed-form continuous-time RNN (ncps.torch.CfC, hidden_size units, "
                "backbone MLP), linear head"
            ),
            build=build_cfc,
            options=CfCOptions(),
        )
    )
    register(
        Model(
            in_default_grid=False,  # heavy: runs when named with -m
            name="ltc",
            description=(
                "ncps liquid time-constant RNN (ncps.torch.LTC, hidden_size fully connected "
                "units, ODE solver unfolded per step), linear head"
            ),
            build=build_ltc,
            options=LTCOptions(),
        )
    )
