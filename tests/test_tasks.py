"""The built-in tasks' generators, optimum and baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.tasks.consecutive import bayes_predictive, make_sequence


def test_consecutive_sequence_is_groups_of_consecutive_numbers():
    seq = make_sequence(np.random.default_rng(0), 1000, 10, 10)
    assert len(seq) == 1000 and seq.min() >= 0 and seq.max() <= 19
    groups = seq.reshape(100, 10)
    assert (np.diff(groups, axis=1) == 1).all()
    assert set(groups[:, 0]) <= set(range(11))
    assert len(set(groups[:, 0])) == 11  # every start value occurs in 100 draws


def test_consecutive_windows_and_heldout(registry):
    task = registry.tasks["consecutive"]
    data = task.make_data(0)
    assert data.train_inputs.shape == (980, 20) and data.train_inputs.dtype == torch.int64
    torch.testing.assert_close(data.train_inputs[:, 1:], data.train_targets[:, :-1])
    torch.testing.assert_close(data.train_inputs[1:, :], data.train_targets[:-1, :])
    assert not torch.equal(data.train_inputs, data.test_inputs)
    again = task.make_data(0)
    assert torch.equal(again.train_inputs, data.train_inputs)
    assert torch.equal(again.test_targets, data.test_targets)


def test_consecutive_optimum_with_unlimited_context_matches_closed_form():
    # With long windows the phase is soon known: accuracy -> 0.9 + 0.1/11, ppl -> 11 ** 0.1
    seq = make_sequence(np.random.default_rng(3), 20000, 10, 10)
    inputs = seq[:-1][None, :]
    probs = bayes_predictive(inputs, 10, 10)[:, 40:]
    accuracy = probs.max(-1).mean()
    entropy = (
        -(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1)), 0)).sum(-1).mean()
    )
    assert accuracy == pytest.approx(0.9 + 0.1 / 11, abs=0.003)
    assert math.exp(entropy) == pytest.approx(11**0.1, abs=0.01)


def test_consecutive_optimum_for_20_step_windows(registry):
    task = registry.tasks["consecutive"]
    optimum = task.optimum(task.make_data(0))
    # a fresh state per 20-step window knows only the prefix: worse than unlimited context
    assert 0.895 < optimum["test_accuracy"] < 0.909
    assert 1.30 < optimum["test_perplexity"] < 1.45
    assert optimum["test_loss"] == pytest.approx(math.log(optimum["test_perplexity"]))


def test_consecutive_baselines(registry):
    task = registry.tasks["consecutive"]
    baselines = {b.name: b.metrics for b in task.baselines(task.make_data(0))}
    assert baselines["uniform"]["test_perplexity"] == 20
    assert 0.85 < baselines["plus-one"]["test_accuracy"] < 0.95


def test_hello_data(registry):
    task = registry.tasks["hello"]
    data = task.make_data(0)
    assert task.decode(data.train_inputs[0].tolist()) == "hello"
    assert task.decode(data.train_targets[0].tolist()) == "ohlol"
    assert task.vocabulary == ["e", "h", "l", "o"]


def test_sine_curves_and_unseen_heldout_phases(registry):
    task = registry.tasks["sine"]
    data = task.make_data(0)
    assert data.train_inputs.shape == (64, 49, 1) and data.train_inputs.dtype == torch.float32
    torch.testing.assert_close(data.train_inputs[:, 1:], data.train_targets[:, :-1])
    t = np.linspace(0, 10, 50)
    k = data.info["test_phases"][0]
    np.testing.assert_allclose(data.test_inputs[0, :, 0].numpy(), np.sin(k + t[:-1]), atol=1e-6)
    train_starts = set(np.round(data.train_inputs[:, 0, 0].numpy(), 5))
    assert not train_starts & set(np.round(data.test_inputs[:, 0, 0].numpy(), 5))


def test_sine_tutorial_phases_option(registry):
    task = registry.tasks["sine"].with_options(train_phases="tutorial")
    data = task.make_data(0)
    starts = data.train_inputs[:, 0, 0].numpy()
    allowed = np.sin([0.0, 1.0, 2.0])
    assert np.isclose(starts[:, None], allowed[None, :], atol=1e-6).any(axis=1).all()
    with pytest.raises(ValueError, match="train_phases"):
        registry.tasks["sine"].with_options(train_phases="nope").make_data(0)


def test_sine_baselines(registry):
    task = registry.tasks["sine"]
    baselines = {b.name: b.metrics for b in task.baselines(task.make_data(0))}
    assert baselines["zero"]["test_loss"] == pytest.approx(0.5, abs=0.05)
    assert baselines["persistence"]["test_loss"] == pytest.approx(0.02, abs=0.005)


def test_task_options_are_converted_and_checked(registry):
    task = registry.tasks["consecutive"].with_options(window="10")
    assert task.window == 10 and task.make_data(0).train_inputs.shape[1] == 10
    with pytest.raises(ValueError, match="no option"):
        registry.tasks["consecutive"].with_options(nope=1)
