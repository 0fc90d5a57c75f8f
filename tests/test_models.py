"""Every built-in model: output and state shapes for both input kinds; scratch-rnn == nn.RNN."""

from __future__ import annotations

import pytest
import torch

from harness.plugin_api.task import TaskShape

TOKENS = TaskShape("tokens", 7, "classes", 7)
VALUES = TaskShape("values", 3, "values", 2)
BUILTIN = ["scratch-rnn", "rnn", "rnncell", "embedding-rnn", "lstm", "gru"]


def inputs_for(shape: TaskShape, batch: int = 4, steps: int = 6) -> torch.Tensor:
    if shape.input_kind == "tokens":
        return torch.randint(0, shape.input_size, (batch, steps))
    return torch.randn(batch, steps, shape.input_size)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("shape", [TOKENS, VALUES], ids=["tokens", "values"])
@pytest.mark.parametrize("layers", [1, 2])
def test_output_and_state_shapes(registry, name, shape, layers):
    model = registry.models[name]
    if model.cannot_serve(shape):
        assert name == "embedding-rnn" and shape.input_kind == "values"
        return
    torch.manual_seed(0)
    net = model.build(shape, 8, layers)
    out, state = net(inputs_for(shape), None)
    assert out.shape == (4, 6, shape.output_size)
    h = state[0] if isinstance(state, tuple) else state
    assert h.shape == (layers, 4, 8)


@pytest.mark.parametrize("name", BUILTIN)
def test_carried_state_equals_whole_sequence(registry, name):
    torch.manual_seed(0)
    net = registry.models[name].build(TOKENS, 8, 2)
    x = inputs_for(TOKENS, steps=10)
    whole, _ = net(x, None)
    first, state = net(x[:, :4], None)
    second, _ = net(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_embedding_rnn_refuses_values_with_reason(registry):
    reason = registry.models["embedding-rnn"].cannot_serve(VALUES)
    assert reason and "tokens" in reason and "values" in reason


@pytest.mark.parametrize("layers", [1, 2])
def test_scratch_rnn_equals_nn_rnn_with_same_weights(registry, layers):
    torch.manual_seed(0)
    scratch = registry.models["scratch-rnn"].build(VALUES, 16, layers)
    reference = registry.models["rnn"].build(VALUES, 16, layers)
    with torch.no_grad():
        for i in range(layers):
            # nn.RNN computes x W_ih^T + b_ih + h W_hh^T + b_hh; scratch has one bias per layer
            scratch.W_xh[i].copy_(getattr(reference.rnn, f"weight_ih_l{i}").T)
            scratch.W_hh[i].copy_(getattr(reference.rnn, f"weight_hh_l{i}").T)
            scratch.b_h[i].copy_(
                getattr(reference.rnn, f"bias_ih_l{i}") + getattr(reference.rnn, f"bias_hh_l{i}")
            )
        scratch.W_hy.copy_(reference.head.weight.T)
        scratch.b_y.copy_(reference.head.bias)
    x = torch.randn(5, 12, 3)
    h0 = torch.randn(layers, 5, 16)
    out_s, h_s = scratch(x, h0)
    out_r, h_r = reference(x, h0)
    torch.testing.assert_close(out_s, out_r, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_s, h_r, rtol=1e-5, atol=1e-6)


def test_scratch_rnn_uses_no_torch_rnn_modules(registry):
    net = registry.models["scratch-rnn"].build(TOKENS, 8, 1)
    kinds = (torch.nn.RNNBase, torch.nn.RNNCellBase)
    assert not any(isinstance(m, kinds) for m in net.modules())
    assert {"W_xh.0", "W_hh.0", "b_h.0", "W_hy", "b_y"} <= {n for n, _ in net.named_parameters()}
