"""The plugin's own test suite, as its author would write it (run after `pip install -e .`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from harness_longrange.parity import make_sequences

from harness.testing import conformance_tests

# The harness's conformance kit over everything this package registers: one line.
test_conformance = conformance_tests("harness-longrange")


@pytest.fixture
def parity(harness_registry):  # harness_registry comes with harness (a pytest11 plugin)
    return harness_registry.tasks["parity"]


class Bits:
    """Stands in for the generator and hands out fixed bits, to check hand-worked targets."""

    def __init__(self, bits):
        self.bits = np.array(bits, dtype=np.int64)

    def integers(self, low, high, size, dtype):
        assert (low, high, size) == (0, 2, self.bits.shape)
        return self.bits.astype(dtype)


def test_targets_are_the_running_parity_of_hand_worked_sequences():
    fixed = Bits([[1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0]])
    bits, parities = make_sequences(fixed, 2, 6)  # type: ignore[arg-type]
    assert bits.tolist() == [[1, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0]]
    assert parities.tolist() == [[1, 1, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]]


def test_the_data_is_random_bits_with_their_parities(parity):
    data = parity.make_data(0)
    bits, targets = data.train_inputs.numpy(), data.train_targets.numpy()
    assert bits.shape == targets.shape == (parity.train_size, parity.length)
    assert set(np.unique(bits)) == {0, 1} and abs(bits.mean() - 0.5) < 0.01
    assert (targets[:, 0] == bits[:, 0]).all()
    assert (targets[:, 1:] == targets[:, :-1] ^ bits[:, 1:]).all()  # flips exactly on a 1
    assert data.val_inputs is None  # API 1: the harness carves the validation split
    assert not torch.equal(data.train_inputs[: parity.test_size], data.test_inputs)


def test_baselines_match_their_closed_forms(parity):
    baselines = {b.name: b.metrics for b in parity.baselines(parity.make_data(0))}
    length = parity.length
    coin = baselines["coin"]
    assert coin["test_accuracy"] == 0.5 and coin["test_loss"] == pytest.approx(math.log(2))
    assert coin["task_sequence_exact"] == 0.5**length
    current = baselines["current-bit"]  # right at step 0, then right with chance 1/2
    assert current["test_accuracy"] == pytest.approx((1 + (length - 1) / 2) / length, abs=0.01)
    assert current["task_correct_prefix"] == pytest.approx(2 - 0.5 ** (length - 1), abs=0.1)
    assert current["task_last_step_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert current["task_sequence_exact"] < 0.01


class Oracle(torch.nn.Module):
    """Keeps the parity exactly: logits that put the running XOR's class far ahead."""

    def forward(self, x, state=None):
        parity = torch.cumsum(x, dim=1) % 2
        return torch.nn.functional.one_hot(parity, 2).float() * 20.0, state


def test_an_oracle_scores_perfectly(parity):
    data = parity.make_data(0)
    metrics = parity.evaluate(Oracle(), data, [])
    assert metrics == {
        "sequence_exact": 1.0,
        "correct_prefix": float(parity.length),
        "last_step_accuracy": 1.0,
    }
    optimum = parity.optimum(data)
    assert all(optimum[f"task_{key}"] == value for key, value in metrics.items())


def test_one_slip_is_counted_where_it_happens(parity):
    class SlipsAtTen(Oracle):
        def forward(self, x, state=None):
            logits, state = super().forward(x, state)
            logits[0, 10:] = logits[0, 10:].flip(-1)  # the first sequence loses track at step 10
            return logits, state

    data = parity.make_data(0)
    metrics = parity.evaluate(SlipsAtTen(), data, [])
    count, length = parity.test_size, parity.length
    assert metrics["sequence_exact"] == pytest.approx((count - 1) / count)
    assert metrics["correct_prefix"] == pytest.approx(((count - 1) * length + 10) / count)
    assert metrics["last_step_accuracy"] == pytest.approx((count - 1) / count)


def test_a_prompt_cannot_be_continued(parity):
    with pytest.raises(ValueError, match="no continuation"):
        parity.encode_prompt("0 1 1")
    assert parity.decode([0, 1, 1, 0]) == "0110"


def test_tcn_sees_the_whole_default_sequence_and_nothing_ahead(harness_registry, parity):
    torch.manual_seed(0)
    net = harness_registry.models["tcn"].build(parity.shape, 16, 1)
    assert net.receptive_field >= parity.length
    x = torch.randint(0, 2, (1, 100))
    changed = x.clone()
    changed[0, 30] = 1 - changed[0, 30]
    moved = (net(changed)[0] - net(x)[0]).abs().amax(-1)[0] > 0
    steps = moved.nonzero().flatten()
    assert steps.min() == 30 and steps.max() == 30 + net.receptive_field - 1
