"""`--params N`: each model's hidden size is the one whose parameter count is closest to N."""

from __future__ import annotations

import pytest

from harness.grid.runner import plan_grid
from harness.training.sizing import count_params, hidden_for_params


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "embedding-rnn", "scratch-rnn"])
def test_the_chosen_hidden_size_is_the_closest_to_the_target(registry, name):
    model, shape = registry.models[name], registry.tasks["consecutive"].shape
    hidden, count = hidden_for_params(model, shape, 20_000)
    assert count == count_params(model, shape, hidden, 1)
    neighbours = [count_params(model, shape, h, 1) for h in (hidden - 1, hidden + 1)]
    assert all(abs(count - 20_000) <= abs(other - 20_000) for other in neighbours)
    net = model.build(shape, hidden, 1)  # the meta-device count is the real one
    assert sum(p.numel() for p in net.parameters()) == count


def test_a_grid_with_params_gives_models_near_equal_sizes(registry):
    plan = plan_grid(
        registry, ["consecutive"], ["rnn", "lstm"], [0, 1], "cpu", {}, {}, params=20_000
    )
    hidden = {c.model: c.recipe.hidden_size for c in plan.cells}
    assert hidden == {"rnn": 122, "lstm": 58}
    sizes = plan.sizes["consecutive"]
    assert all(abs(s["params"] - 20_000) / 20_000 < 0.02 for s in sizes.values())


def test_params_and_hidden_size_together_are_refused(cli):
    result = cli("run", "--params", "1000", "--hidden-size", "8", "-t", "hello")
    assert result.returncode == 2 and "not both" in result.stderr
    assert "Traceback" not in result.stderr
