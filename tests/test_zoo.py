"""The ``harness[zoo]`` models (cfc, ltc, mingru, minlstm, mamba): each wrapper against the
wrapped package's own module on the same weights, shapes, the state contract, options, and
the plugins turning unavailable (not broken) without their package.

Each package's tests skip where it is not installed (``pip install 'harness[zoo]'``).
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

import harness
from harness.plugin_api.manager import load_plugins
from harness.plugin_api.task import TaskShape

TOKENS = TaskShape("tokens", 8, "classes", 8)
TOKENS_TO_VALUES = TaskShape("tokens", 5, "values", 2)
VALUES = TaskShape("values", 3, "values", 2)
VALUES_TO_CLASSES = TaskShape("values", 3, "classes", 4)
SHAPES = [TOKENS, TOKENS_TO_VALUES, VALUES, VALUES_TO_CLASSES]
SHAPE_IDS = ["tokens", "tokens-values", "values", "values-classes"]

#: model name -> (its plugin module, the package it needs)
ZOO = {
    "cfc": ("zoo_ncps", "ncps"),
    "ltc": ("zoo_ncps", "ncps"),
    "mingru": ("zoo_mingru", "minGRU_pytorch"),
    "minlstm": ("zoo_mingru", "minGRU_pytorch"),
    "mamba": ("zoo_mamba", "mambapy"),
}


@pytest.fixture(scope="module", autouse=True)
def warm_torch():
    """torch's one-off first-use costs (assert_close's lazy imports, the first vmap and Adam
    step: about 3 s) paid once here, not billed to whichever test happens to run first."""
    torch.testing.assert_close(torch.ones(2), torch.ones(2))
    layer = torch.nn.Linear(2, 2)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    stacked = {k: torch.stack([v, v]) for k, v in params.items()}
    loss = lambda p, x: torch.func.functional_call(layer, p, (x,)).sum()  # noqa: E731
    torch.func.vmap(torch.func.grad(loss))(stacked, torch.ones(2, 3, 2))
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster than many, and steadier on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plugin(module: str):
    return importlib.import_module(f"harness.models.{module}")


def zoo_model(name: str, **options) -> harness.Model:
    """The registered Model ``name``, with ``options`` set, skipping without its package."""
    module, package = ZOO[name]
    pytest.importorskip(package)
    models: list = []
    plugin(module).register_models(register=models.append)
    model = next(m for m in models if m.name == name)
    return model.with_options(**options)


def build(name: str, shape: TaskShape = TOKENS, hidden: int = 8, layers: int = 1, **options):
    torch.manual_seed(0)
    return zoo_model(name, **options).make(shape, hidden, layers).eval()


def inputs_for(shape: TaskShape, batch: int = 3, steps: int = 9, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if shape.input_kind == "tokens":
        return torch.randint(0, shape.input_size, (batch, steps), generator=g)
    return torch.randn(batch, steps, shape.input_size, generator=g)


def pieces(net, x: torch.Tensor, cuts: list[int]):
    """``net`` over ``x`` cut at ``cuts``, the state carried: the outputs joined, final state."""
    outputs, state, start = [], None, 0
    for end in [*cuts, x.shape[1]]:
        out, state = net(x[:, start:end], state)
        outputs.append(out)
        start = end
    return torch.cat(outputs, dim=1), state


def one_hot(x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(x, size).float()


# ---------------------------------------------------------------------------------------------
# every zoo model: shapes and the state contract


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("layers", [1, 2])
def test_output_shapes(name, shape, layers):
    net = build(name, shape, hidden=8, layers=layers)
    with torch.no_grad():
        out, state = net(inputs_for(shape, batch=4, steps=6), None)
    assert out.shape == (4, 6, shape.output_size)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert isinstance(state, tuple) and len(state) == layers


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("shape", [TOKENS, VALUES], ids=["tokens", "values"])
@pytest.mark.parametrize("cuts", [[5], [1], [3, 4, 8], list(range(1, 12))], ids=str)
def test_pieces_with_state_carried_equal_whole(name, shape, cuts):
    net = build(name, shape, hidden=8, layers=2)
    x = inputs_for(shape, steps=12)
    with torch.no_grad():
        whole, final = net(x, None)
        joined, carried = pieces(net, x, cuts)
    torch.testing.assert_close(joined, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(carried, final, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cfc", {"mode": "pure"}),
        ("cfc", {"mode": "no_gate", "backbone_layers": 0}),
        ("cfc", {"mixed_memory": True, "backbone_units": 5, "backbone_layers": 2}),
        ("ltc", {"ode_unfolds": 2, "mixed_memory": True}),
        ("mingru", {"expansion": 1.5, "ff_mult": 0}),
        ("minlstm", {"expansion": 2.0, "ff_mult": 2}),
        ("mamba", {"d_state": 4, "expand": 1, "d_conv": 2}),
        ("mamba", {"d_conv": 2, "dt_rank": 3}),
    ],
    ids=str,
)
def test_options_keep_the_state_contract(name, options):
    net = build(name, TOKENS, hidden=8, layers=2, **options)
    x = inputs_for(TOKENS, steps=10)
    with torch.no_grad():
        whole, _ = net(x, None)
        joined, _ = pieces(net, x, [1, 4, 5])
    torch.testing.assert_close(joined, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(ZOO))
def test_gradients_reach_every_trainable_parameter(name):
    net = build(name, TOKENS, hidden=8, layers=2).train()
    out, state = net(inputs_for(TOKENS, steps=5), None)
    out2, _ = net(inputs_for(TOKENS, steps=3, seed=2), state)
    (out.square().mean() + out2.square().mean()).backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


# ---------------------------------------------------------------------------------------------
# against the packages' own modules, same weights


@pytest.mark.parametrize("name", ["cfc", "ltc"])
@pytest.mark.parametrize("layers", [1, 2])
def test_ncps_stack_is_ncps_modules_in_a_row(name, layers):
    ncps_torch = pytest.importorskip("ncps.torch")
    net = build(name, TOKENS, hidden=8, layers=layers)
    kind = ncps_torch.CfC if name == "cfc" else ncps_torch.LTC
    assert all(type(rnn) is kind for rnn in net.rnns)
    assert all(rnn.state_size == 8 for rnn in net.rnns)
    x = inputs_for(TOKENS)
    with torch.no_grad():
        out, state = net(x, None)
        hidden = one_hot(x, TOKENS.input_size)
        finals = []
        for rnn in net.rnns:  # the package's own forward, its own zero start
            hidden, h = rnn(hidden)
            finals.append(h)
        expected = net.head(hidden)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(state, tuple(finals))


def test_cfc_options_reach_ncps():
    pytest.importorskip("ncps")
    net = build(
        "cfc",
        TOKENS,
        hidden=8,
        mode="no_gate",
        backbone_units=5,
        backbone_layers=2,
        activation="relu",
    )
    cell = net.rnns[0].rnn_cell
    assert cell.mode == "no_gate" and cell.backbone_layers == 2
    linears = [m for m in cell.backbone if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [5, 5]
    assert isinstance(cell.backbone[1], torch.nn.ReLU)
    default = build("cfc", TOKENS, hidden=12).rnns[0].rnn_cell
    assert default.backbone[0].out_features == 12  # backbone_units=0: hidden_size, not 128


def test_ltc_polarities_follow_the_torch_seed():
    pytest.importorskip("ncps")
    model = zoo_model("ltc", ode_unfolds=3)
    assert build("ltc", ode_unfolds=3).rnns[0].rnn_cell._ode_unfolds == 3

    def erev(seed):
        torch.manual_seed(seed)
        return model.make(TOKENS, 8, 1).rnns[0].rnn_cell._params["erev"]

    torch.testing.assert_close(erev(0), erev(0))
    assert not torch.equal(erev(0), erev(1))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_mingru_net_is_the_packages_minlm(name, layers):
    """With ``expansion`` and ``ff_mult`` as minLM's, the wrapper is minLM with a head bias."""
    min_lm = pytest.importorskip("minGRU_pytorch.minLM")
    net = build(name, TOKENS, hidden=8, layers=layers, expansion=1.5, ff_mult=2)
    reference = min_lm.minLM(
        num_tokens=8, dim=8, depth=layers, ff_mult=2, expansion=1.5, use_lstm=name == "minlstm"
    ).eval()
    with torch.no_grad():
        reference.token_emb.load_state_dict(net.embed.state_dict())
        for i, (_, norm, rnn, ff_norm, ff, _) in enumerate(reference.layers):
            norm.load_state_dict(net.norms[i].state_dict())
            rnn.load_state_dict(net.rnns[i].state_dict())
            ff_norm.load_state_dict(net.ff_norms[i].state_dict())
            ff.load_state_dict(net.ffs[i].state_dict())
        reference.norm.load_state_dict(net.norm.state_dict())
        reference.to_logits.weight.copy_(net.head.weight)
        net.head.bias.zero_()
        x = inputs_for(TOKENS)
        out, state = net(x, None)
        logits, hiddens = reference(x, return_prev_hiddens=True)
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(state, tuple(hiddens))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_min_rnn_chunks_equal_the_packages_own_steps(name):
    """The package's sequential path (one step at a time) is the reference for a carried
    state; the wrapper's chunks through the parallel scan must agree with it."""
    pytest.importorskip("minGRU_pytorch")
    net = build(name, VALUES, hidden=6, layers=1, ff_mult=0)
    rnn, x = net.rnns[0], torch.randn(2, 7, 6)
    with torch.no_grad():
        h, stepped = None, []
        for t in range(7):
            y, h = rnn(x[:, t : t + 1], h, return_next_prev_hidden=True)
            stepped.append(y)
        stepped = torch.cat(stepped, dim=1)
        parallel = rnn(x)  # from no state, the package's scan is right as is
    torch.testing.assert_close(parallel, stepped, rtol=1e-5, atol=1e-5)

    from harness.models.zoo_common import g_inverse, minlstm_needs_g_inverse

    with torch.no_grad():
        first, h = rnn(x[:, :3], return_next_prev_hidden=True)
        fix = name == "minlstm" and minlstm_needs_g_inverse()
        second = rnn(x[:, 3:], g_inverse(h) if fix else h)
    torch.testing.assert_close(torch.cat([first, second], 1), stepped, rtol=1e-5, atol=1e-5)


def test_g_inverse_inverts_g():
    pytest.importorskip("minGRU_pytorch")
    from minGRU_pytorch.minGRU import g, log_g

    from harness.models.zoo_common import g_inverse

    h = torch.tensor([1e-6, 0.01, 0.3, 0.5, 0.7, 1.0, 3.0])
    torch.testing.assert_close(g(g_inverse(h)), h)
    torch.testing.assert_close(log_g(g_inverse(h)), h.log())


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("shape", [TOKENS, VALUES], ids=["tokens", "values"])
def test_mamba_net_is_mambapy_forward(layers, shape):
    mamba = pytest.importorskip("mambapy.mamba")
    net = build("mamba", shape, hidden=8, layers=layers, d_state=4)
    assert isinstance(net.mamba, mamba.Mamba) and net.mamba.config.d_state == 4
    x = inputs_for(shape)
    with torch.no_grad():
        out, _ = net(x, None)
        expected = net.head(net.norm(net.mamba(net.embed(x))))  # mambapy's parallel forward
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("d_conv", [2, 4])
def test_mamba_state_is_mambapy_step_cache(d_conv):
    """The state after a chunk is the cache mambapy's own ``step()`` reaches step by step, and
    stepping the package from the wrapper's cache continues the sequence."""
    pytest.importorskip("mambapy")
    net = build("mamba", TOKENS, hidden=8, layers=2, d_state=4, d_conv=d_conv)
    x = inputs_for(TOKENS, steps=10)
    with torch.no_grad():
        whole, _ = net(x, None)
        embedded = net.embed(x)
        caches = [(None, torch.zeros(3, 16, d_conv - 1)) for _ in net.mamba.layers]
        stepped = []
        for t in range(6):
            y, caches = net.mamba.step(embedded[:, t], caches)
            stepped.append(y)
        _, state = net(x[:, :6], None)
        torch.testing.assert_close(state, tuple(caches), rtol=1e-5, atol=1e-5)
        caches = [tuple(cache) for cache in state]
        for t in range(6, 10):
            y, caches = net.mamba.step(embedded[:, t], caches)
            stepped.append(y)
        stepped = net.head(net.norm(torch.stack(stepped, dim=1)))
    torch.testing.assert_close(stepped, whole, rtol=1e-5, atol=1e-5)


def test_minlstm_probe_leaves_the_random_state_alone(monkeypatch):
    pytest.importorskip("minGRU_pytorch")
    from harness.models import zoo_common

    monkeypatch.setattr(zoo_common, "_MINLSTM_NEEDS_G_INVERSE", None)
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    needs = zoo_common.minlstm_needs_g_inverse()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert isinstance(needs, bool) and zoo_common._MINLSTM_NEEDS_G_INVERSE is needs


# ---------------------------------------------------------------------------------------------
# the harness's own conformance kit


@pytest.mark.parametrize("name", ["mingru", "minlstm", "mamba", "cfc", "ltc"])
def test_conformance_kit(name):
    """``check_model``: training steps included, and for mingru/minlstm, which claim
    ``trains_across_seeds``, ``check_trains_across_seeds`` too. ncps's Python time loop is
    slow, so cfc and ltc are checked at one layer, a smaller width and fewer steps."""
    from harness.testing import check_model

    model = zoo_model(name)
    assert model.trains_across_seeds == (name in ("mingru", "minlstm"))
    if name in ("cfc", "ltc"):
        check_model(model, hidden_size=4, layers=(1,), batch=2, steps=4)
    else:
        check_model(model, layers=(2,))


# ---------------------------------------------------------------------------------------------
# options


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("cfc", {"mode": "bogus"}, "cfc option mode must be one of default, pure, no_gate"),
        ("cfc", {"backbone_units": -1}, "cfc option backbone_units must be an integer >= 0"),
        ("cfc", {"backbone_layers": 1.5}, "backbone_layers must be an integer"),
        ("cfc", {"backbone_dropout": 1.0}, "backbone_dropout must be in [0, 1)"),
        ("cfc", {"activation": "softmax"}, "cfc option activation must be one of"),
        ("cfc", {"mixed_memory": 2}, "cfc option mixed_memory must be true or false"),
        ("cfc", {"mixed_memory": "maybe"}, "option 'mixed_memory' takes a bool"),
        ("ltc", {"ode_unfolds": 0}, "ltc option ode_unfolds must be an integer >= 1"),
        ("mingru", {"expansion": 0.0}, "option expansion must be a number > 0"),
        ("minlstm", {"ff_mult": -1}, "option ff_mult must be an integer >= 0"),
        ("mamba", {"d_state": 0}, "mamba option d_state must be an integer >= 1"),
        ("mamba", {"d_conv": 1}, "mamba option d_conv must be an integer >= 2"),
        ("mamba", {"expand": True}, "mamba option expand must be an integer >= 1"),
        ("mamba", {"d_conv": "wide"}, "mamba' option 'd_conv' takes an int"),
        ("mamba", {"dt_rank": -2}, "mamba option dt_rank must be an integer >= 0"),
    ],
    ids=str,
)
def test_bad_options_are_one_clear_line(name, options, message):
    """Through ``Model.with_options``, as ``-o NAME.OPTION=VALUE`` goes; the options are
    checked without the package, so the model is put together here, not registered."""
    module = plugin(ZOO[name][0])
    classes = {"cfc": "CfCOptions", "ltc": "LTCOptions", "mamba": "MambaOptions"}
    options_class = getattr(module, classes.get(name, "MinRNNOptions"))
    builder = getattr(module, f"build_{name}", getattr(module, "build", None))
    model = harness.Model(name=name, description="x", build=builder, options=options_class())
    with pytest.raises(ValueError) as excinfo:
        model.with_options(**options)
    text = str(excinfo.value)
    assert message in text and "\n" not in text


def test_option_strings_convert_like_the_command_line():
    model = zoo_model("cfc", backbone_units="5", mixed_memory="true", mode="pure")
    assert model.options == dataclasses.replace(
        model.options, backbone_units=5, mixed_memory=True, mode="pure"
    )
    assert zoo_model("mingru", expansion="1.5").options.expansion == 1.5
    assert zoo_model("mamba", d_state="8").options.d_state == 8


@pytest.mark.parametrize("name", list(ZOO))
def test_zero_layers_is_refused(name):
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        zoo_model(name).make(TOKENS, 8, 0)


# ---------------------------------------------------------------------------------------------
# missing packages: unavailable with the install line, not broken


def test_require_raises_missing_dependency():
    with pytest.raises(harness.MissingDependency) as excinfo:
        harness.require("surely_not_installed_pkg", install="pip install x", offers=("x",))
    assert excinfo.value.missing == ["surely_not_installed_pkg"]
    assert excinfo.value.offers == ("x",)


@pytest.mark.parametrize(
    ("module", "package", "offers"),
    [
        ("zoo_ncps", "ncps", ("cfc", "ltc")),
        ("zoo_mingru", "minGRU_pytorch", ("mingru", "minlstm")),
        ("zoo_mamba", "mambapy", ("mamba",)),
    ],
)
def test_plugin_is_unavailable_without_its_package(monkeypatch, module, package, offers):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == package else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(harness.MissingDependency) as excinfo:
        plugin(module).register_models(register=lambda model: None)
    assert excinfo.value.missing == [package]
    assert excinfo.value.install == "pip install 'harness[zoo]'"
    assert excinfo.value.offers == offers

    registry = load_plugins(allow=[], extra=[(module, plugin(module))])
    assert not registry.broken and not set(offers) & set(registry.models)
    [item] = registry.unavailable
    assert item.missing == (package,) and item.offers == offers
    assert registry.install_hint(offers[0]) == f"{offers[0]} needs {package}: " + item.install


@pytest.mark.parametrize("module", ["zoo_ncps", "zoo_mingru", "zoo_mamba"])
def test_plugin_registers_through_the_manager(module):
    _, package = next(v for v in ZOO.values() if v[0] == module)
    pytest.importorskip(package)
    registry = load_plugins(allow=[], extra=[(module, plugin(module))], strict=True)
    offered = {name for name, (mod, _) in ZOO.items() if mod == module}
    assert offered <= set(registry.models) and not registry.unavailable


@pytest.mark.parametrize("module", ["zoo_ncps", "zoo_mingru", "zoo_mamba"])
def test_plugin_import_is_light(module):
    from harness.testing import check_import_is_light
    from harness.testing.suite import HEAVY

    heavy = (*HEAVY, "ncps", "minGRU_pytorch", "mambapy", "einops")
    check_import_is_light(f"harness.models.{module}", heavy=heavy)
