"""Sequence-to-one tasks: with ``scored_steps`` only the last steps enter loss and metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from harness import Recipe, Task, TaskData, TaskShape, hookimpl
from harness.plugin_api.manager import load_plugins
from harness.training.train import train_cell


@dataclass
class RecallFirst(Task):
    """Say the first token at the last step; earlier targets are noise no model can predict."""

    steps: int = 6
    scored: int | None = 1

    name = "recall-first"
    description = "recall the first token at the end"
    shape = TaskShape("tokens", 4, "classes", 4)
    recipe = Recipe(epochs=40, batch_size=32, lr=0.02, hidden_size=16)
    primary_metric = "test_accuracy"
    higher_is_better = True

    @property
    def scored_steps(self):  # type: ignore[override]
        return self.scored

    def make_data(self, seed: int) -> TaskData:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 4, (512, self.steps), generator=g)
        y = torch.randint(0, 4, (512, self.steps), generator=g)  # unpredictable...
        y[:, -1] = x[:, 0]  # ...except the last step
        return TaskData(x[:384], y[:384], x[384:], y[384:])


class Plugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(RecallFirst())


@pytest.fixture(scope="module")
def registry():
    return load_plugins(allow=["gru"], extra=[("recall", Plugin())])


def test_only_the_last_step_is_scored(registry):
    torch.set_num_threads(1)
    task, model = registry.tasks["recall-first"], registry.models["gru"]
    outcome = train_cell(task, model, 0, torch.device("cpu"), task.recipe)
    assert outcome.metrics["test_accuracy"] > 0.95  # the noise steps are not counted
    every_step = task.with_options(scored=None)
    diluted = train_cell(every_step, model, 0, torch.device("cpu"), task.recipe)
    assert diluted.metrics["test_accuracy"] < 0.5  # scored on the noise too


def test_invalid_scored_steps_make_the_plugin_broken():
    class Bad:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register(RecallFirst(scored=0))

    registry = load_plugins(allow=[], extra=[("bad", Bad())])
    assert "recall-first" not in registry.tasks
    assert "scored_steps must be None or a positive int" in registry.broken[0].error
