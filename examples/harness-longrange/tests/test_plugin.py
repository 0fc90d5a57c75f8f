"""The plugin's own test suite, as its author would write it (run after `pip install -e .`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.testing import conformance_tests

# The harness's conformance kit over everything this package registers: one line.
test_conformance = conformance_tests("harness-longrange")


@pytest.fixture
def adding(harness_registry):  # harness_registry comes with harness (a pytest11 plugin)
    return harness_registry.tasks["adding"]


def test_two_marked_numbers_one_in_each_half_and_the_answer_at_the_end(adding):
    data = adding.make_data(0)
    inputs, targets = data.train_inputs.numpy(), data.train_targets.numpy()
    length = adding.length
    markers = inputs[..., 1]
    assert (markers[:, -1] == -1).all()
    first, second = (markers[:, : length // 2] == 1), (markers[:, length // 2 : -1] == 1)
    assert (first.sum(axis=1) == 1).all() and (second.sum(axis=1) == 1).all()
    marked = np.where(markers == 1, inputs[..., 0], 0.0).sum(axis=1)
    np.testing.assert_allclose(targets[:, -1, 0], marked, rtol=1e-6)
    assert (targets[:, :-1] == 0).all()
    assert inputs[..., 0].min() >= 0.0 and inputs[..., 0].max() <= 1.0


def test_baselines_match_their_closed_forms(adding):
    baselines = {b.name: b.metrics for b in adding.baselines(adding.make_data(0))}
    # Var(U + U) = 1/6 for the mean guess; Var(U) = 1/12 when one number is known
    assert baselines["mean"]["task_last_step_mse"] == pytest.approx(1 / 6, abs=0.02)
    assert baselines["second-only"]["task_last_step_mse"] == pytest.approx(1 / 12, abs=0.01)


def test_a_perfect_answer_scores_zero(adding):
    class Oracle(torch.nn.Module):
        def forward(self, x, state=None):
            marked = torch.where(x[..., 1:] == 1, x[..., :1], torch.zeros_like(x[..., :1]))
            return torch.where(x[..., 1:] == -1, marked.cumsum(1), 0.0), state

    metrics = adding.evaluate(Oracle(), adding.make_data(0), [])
    assert metrics["last_step_mse"] < 1e-10 and metrics["last_step_accuracy"] == 1.0


def test_tcn_sees_the_whole_default_sequence_and_nothing_ahead(harness_registry, adding):
    torch.manual_seed(0)
    net = harness_registry.models["tcn"].build(adding.shape, 16, 1)
    assert net.receptive_field >= adding.length
    x = torch.rand(1, 100, 2)
    changed = x.clone()
    changed[0, 30] += 1.0
    moved = (net(changed)[0] - net(x)[0]).abs()[0, :, 0] > 0
    steps = moved.nonzero().flatten()
    assert steps.min() == 30 and steps.max() == 30 + net.receptive_field - 1
