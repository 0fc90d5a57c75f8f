"""The `transformer` model: shapes, causality, the key/value cache as state, options, limits.

Tested through the plugin module itself (build, TransformerOptions, cannot_serve), not the
registry, so these tests do not depend on how the core registers model options.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from harness import TaskShape
from harness.models.transformer import TransformerOptions, build, cannot_serve

TOKENS = TaskShape("tokens", 11, "classes", 7)
VALUES = TaskShape("values", 3, "values", 2)
POSITIONS = ["learned", "sinusoidal"]


def inputs_for(shape, batch: int = 3, steps: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if shape.input_kind == "tokens":
        return torch.randint(0, shape.input_size, (batch, steps), generator=g)
    return torch.randn(batch, steps, shape.input_size, generator=g)


def net_for(shape, positions="learned", layers=2, hidden=16, **options):
    torch.manual_seed(0)
    net = build(shape, hidden, layers, TransformerOptions(positions=positions, **options))
    return net.eval()


def shape_with_length(length):
    """A task shape whose sequences are ``length`` long (TaskShape.length once the core has it)."""
    try:
        return TaskShape("tokens", 11, "classes", 7, length=length)
    except TypeError:
        return SimpleNamespace(
            input_kind="tokens", input_size=11, output_kind="classes", output_size=7, length=length
        )


@pytest.mark.parametrize("shape", [TOKENS, VALUES], ids=["tokens", "values"])
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("layers", [1, 2])
def test_output_and_state_shapes(shape, positions, layers):
    net = net_for(shape, positions, layers, hidden=16, heads=4)
    out, state = net(inputs_for(shape, batch=3, steps=10))
    assert out.shape == (3, 10, shape.output_size) and out.dtype == torch.float32
    assert isinstance(state, tuple) and len(state) == 2 * layers
    assert all(t.shape == (3, 4, 10, 4) for t in state)  # (batch, heads, cached, head_dim)


@pytest.mark.parametrize("shape", [TOKENS, VALUES], ids=["tokens", "values"])
@pytest.mark.parametrize("positions", POSITIONS)
def test_later_inputs_do_not_change_earlier_outputs(shape, positions):
    net = net_for(shape, positions)
    x = inputs_for(shape, steps=12)
    changed = x.clone()
    if shape.input_kind == "tokens":
        changed[:, 7:] = (changed[:, 7:] + 1) % shape.input_size
    else:
        changed[:, 7:] += 1.0
    with torch.no_grad():
        before, _ = net(x)
        after, _ = net(changed)
    torch.testing.assert_close(after[:, :7], before[:, :7])
    assert not torch.allclose(after[:, 7:], before[:, 7:])


def test_sequences_in_a_batch_do_not_see_each_other():
    net = net_for(TOKENS)
    x = inputs_for(TOKENS, batch=4, steps=9)
    with torch.no_grad():
        together, _ = net(x)
        alone, _ = net(x[2:3])
    torch.testing.assert_close(alone, together[2:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [TOKENS, VALUES], ids=["tokens", "values"])
@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("split", [1, 5, 9])
def test_halves_with_the_cache_carried_equal_the_whole(shape, positions, split):
    net = net_for(shape, positions)
    x = inputs_for(shape, steps=10)
    with torch.no_grad():
        whole, _ = net(x)
        first, cache = net(x[:, :split])
        second, _ = net(x[:, split:], cache)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("positions", POSITIONS)
def test_state_none_is_the_default(positions):
    net = net_for(TOKENS, positions)
    x = inputs_for(TOKENS)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], net(x, None)[0])


def test_the_cache_grows_by_the_steps_fed():
    net = net_for(TOKENS, layers=2)
    x = inputs_for(TOKENS, steps=10)
    with torch.no_grad():
        _, cache = net(x[:, :4])
        assert [t.shape[2] for t in cache] == [4] * 4
        _, cache = net(x[:, 4:7], cache)
        assert [t.shape[2] for t in cache] == [7] * 4
        _, cache = net(x[:, 7:8], cache)
        assert [t.shape[2] for t in cache] == [8] * 4


@pytest.mark.parametrize("positions", POSITIONS)
def test_a_cache_past_the_context_slides_and_still_equals_the_whole(positions):
    # context 5: each token sees itself and the 4 before it; the cache keeps 4 entries
    net = net_for(TOKENS, positions, context=5)
    x = inputs_for(TOKENS, steps=13)
    with torch.no_grad():
        whole, _ = net(x)
        pieces, cache = [], None
        for first in range(0, 13, 3):
            out, cache = net(x[:, first : first + 3], cache)
            pieces.append(out)
            assert all(t.shape[2] == min(first + out.shape[1], 4) for t in cache)
        one_by_one, cache = [], None
        for t in range(13):
            out, cache = net(x[:, t : t + 1], cache)
            one_by_one.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat(one_by_one, dim=1), whole, rtol=1e-5, atol=1e-5)
    # the window: each layer sees 4 steps back, so 2 layers reach 8 steps back and no further
    changed = x.clone()
    changed[:, 0] = (changed[:, 0] + 1) % TOKENS.input_size
    with torch.no_grad():
        after, _ = net(changed)
    torch.testing.assert_close(after[:, 9:], whole[:, 9:])
    assert not torch.allclose(after[:, 8], whole[:, 8])


def test_context_one_keeps_an_empty_cache():
    net = net_for(TOKENS, context=1)
    x = inputs_for(TOKENS, steps=4)
    with torch.no_grad():
        whole, _ = net(x)
        first, cache = net(x[:, :2])
        assert all(t.shape[2] == 0 for t in cache)
        second, _ = net(x[:, 2:], cache)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_cannot_serve_declines_a_task_longer_than_the_context():
    options = TransformerOptions(context=256)
    reason = cannot_serve(shape_with_length(300), options)
    assert reason == (
        "transformer serves sequences up to context=256 (learned positions); "
        "the task's are 300: raise -o transformer.context"
    )
    assert "sinusoidal" in cannot_serve(
        shape_with_length(300), TransformerOptions(context=256, positions="sinusoidal")
    )


def test_cannot_serve_accepts_a_short_task_or_an_unknown_length():
    options = TransformerOptions(context=256)
    assert cannot_serve(shape_with_length(256), options) is None
    assert cannot_serve(shape_with_length(10), options) is None
    assert cannot_serve(shape_with_length(None), options) is None
    assert cannot_serve(TOKENS, options) is None  # a TaskShape without a length field


@pytest.mark.parametrize(
    "options, message",
    [
        ({"heads": 0}, "heads must be an integer >= 1, not 0"),
        ({"heads": 2.5}, "heads must be an integer >= 1, not 2.5"),
        ({"context": 0}, "context must be an integer >= 1, not 0"),
        ({"ff_mult": 0}, "ff_mult must be an integer >= 1, not 0"),
        ({"dropout": -0.1}, "dropout must be in [0, 1), not -0.1"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), not 1.0"),
        ({"dropout": "0.1"}, "dropout must be a number, not '0.1'"),
        ({"positions": "rotary"}, "positions must be 'learned' or 'sinusoidal', not 'rotary'"),
    ],
)
def test_options_are_validated(options, message):
    with pytest.raises(ValueError) as info:
        TransformerOptions(**options)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_default_options():
    assert TransformerOptions() == TransformerOptions(
        heads=4, context=512, ff_mult=4, dropout=0.0, positions="learned"
    )


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by heads 4"):
        build(TOKENS, 10, 1, TransformerOptions(heads=4))
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by heads 3"):
        build(TOKENS, 10, 1, TransformerOptions(heads=3))
    assert build(TOKENS, 12, 1, TransformerOptions(heads=3)) is not None
    assert build(TOKENS, 10, 1, TransformerOptions(heads=5)) is not None


def test_dropout_only_in_training():
    net = net_for(TOKENS, dropout=0.5)
    x = inputs_for(TOKENS)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], net(x)[0])  # eval: deterministic
        net.train()
        torch.manual_seed(1)
        a = net(x)[0]
        torch.manual_seed(2)
        b = net(x)[0]
    assert not torch.allclose(a, b)


def test_training_moves_every_parameter():
    net = net_for(VALUES, layers=2).train()
    x, y = inputs_for(VALUES), torch.randn(3, 10, VALUES.output_size)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    out, state = net(x)
    torch.nn.functional.mse_loss(out, y).backward()
    assert all(p.grad is not None for p in net.parameters())
    optimizer.step()
    assert all(not torch.equal(p, before[n]) for n, p in net.named_parameters())


def test_loading_the_plugin_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; import harness.models.transformer; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
