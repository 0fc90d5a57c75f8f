"""Splits and selection: a validation split for every task, the epoch chosen on it with its
weights restored, early stopping, and the test split evaluated once (or not at all)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from harness import Model, Recipe, Task, TaskData, TaskShape
from harness.plugin_api.manager import api_refusal
from harness.plugin_api.task import with_validation
from harness.testing.reference import REFERENCE_MODEL
from harness.training.metrics import score
from harness.training.train import Selection, train_cell

CPU = torch.device("cpu")


@dataclass
class NextToken(Task):
    """Predict the input shifted by one on random tokens: learnable, then overfit.

    ``marked_test`` makes every test sequence all 4s, a row no other split holds in practice
    (5**-8 per row), so a network that sees one has been shown the test split.
    """

    count: int = 120
    own_validation: bool = False
    marked_test: bool = False

    name = "next-token"
    description = "copy the previous token"
    shape = TaskShape("tokens", 5, "classes", 5)
    recipe = Recipe(epochs=6, batch_size=16, lr=0.05, hidden_size=8)
    primary_metric = "test_accuracy"
    higher_is_better = True

    def make_data(self, seed: int) -> TaskData:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 5, (self.count + 40, 8), generator=g)
        y = torch.roll(x, 1, dims=1)
        test_x = x[self.count :].clone()
        if self.marked_test:
            test_x.fill_(4)
        extra = {}
        if self.own_validation:
            extra = {"val_inputs": x[:20], "val_targets": y[:20]}
        return TaskData(x[: self.count], y[: self.count], test_x, y[self.count :], **extra)


def test_a_task_without_validation_gets_the_tail_of_its_training_data_carved():
    data = NextToken().make_data(0)
    carved, note = with_validation(data)
    assert carved.train_inputs.shape[0] == 108 and carved.val_inputs.shape[0] == 12
    assert torch.equal(carved.val_inputs, data.train_inputs[-12:])
    assert torch.equal(carved.train_inputs, data.train_inputs[:-12])
    assert torch.equal(carved.test_inputs, data.test_inputs)
    assert "last 12 of 120" in note and "not trained on" in note
    again, _ = with_validation(NextToken().make_data(0))
    assert torch.equal(again.val_inputs, carved.val_inputs)  # deterministic


def test_a_task_with_its_own_validation_keeps_it_and_a_single_sequence_is_its_own():
    data = NextToken(own_validation=True).make_data(0)
    kept, note = with_validation(data)
    assert kept is data and "own" in note
    single = TaskData(
        data.train_inputs[:1], data.train_targets[:1], data.test_inputs, data.test_targets
    )
    carved, note = with_validation(single)
    assert torch.equal(carved.val_inputs, single.train_inputs) and "single" in note
    assert carved.train_inputs.shape[0] == 1


def test_builtin_tasks_draw_validation_from_their_own_seed_stream(registry):
    for name in ("consecutive", "sine"):
        data = registry.tasks[name].make_data(0)
        assert data.val_inputs is not None
        assert not torch.equal(data.val_inputs, data.test_inputs)
        assert not torch.equal(data.val_inputs[:5], data.train_inputs[:5])
        assert registry.tasks[name].validation
    hello = registry.tasks["hello"].make_data(0)
    assert torch.equal(hello.val_inputs, hello.train_inputs)
    assert "one sequence" in registry.tasks["hello"].validation


def test_best_selection_restores_the_best_epoch_weights():
    torch.manual_seed(0)
    task = NextToken()
    outcome = train_cell(task, REFERENCE_MODEL, 0, CPU, task.recipe, keep_weights=True)
    metrics, curve = outcome.metrics, outcome.curve
    assert [row["epoch"] for row in curve] == list(range(1, 7))
    assert {"train_loss", "val_loss", "val_accuracy", "val_perplexity"} <= set(curve[0])
    assert not any(key.startswith("test_") for row in curve for key in row)
    best = max(curve, key=lambda row: (row["val_accuracy"], -row["val_loss"]))
    assert metrics["best_epoch"] == metrics["selected_epoch"] == best["epoch"]
    assert metrics["val_accuracy"] == best["val_accuracy"]
    assert metrics["test_evaluations"] == 1 and metrics["test_accuracy"] is not None
    # the returned weights are the best epoch's: they reproduce its validation loss
    net = REFERENCE_MODEL.build(task.shape, task.recipe.hidden_size, 1)
    net.load_state_dict(outcome.state_dict)
    data, _ = with_validation(task.make_data(0))
    again = score(net.eval(), data.val_inputs, data.val_targets, "classes")
    assert again["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_last_selection_reports_the_final_epoch():
    task = NextToken()
    outcome = train_cell(task, REFERENCE_MODEL, 0, CPU, task.recipe, selection=Selection("last"))
    assert outcome.metrics["selected_epoch"] == 6
    assert outcome.metrics["val_loss"] == outcome.curve[-1]["val_loss"]


def test_patience_stops_once_validation_stops_improving():
    task = NextToken()
    recipe = task.recipe.with_overrides(epochs=40, lr=0.2)
    outcome = train_cell(task, REFERENCE_MODEL, 0, CPU, recipe, selection=Selection(patience=2))
    metrics = outcome.metrics
    assert metrics["stopped_early"] and metrics["epochs_run"] < 40
    assert metrics["epochs_run"] == metrics["best_epoch"] + 2


class Spy(torch.nn.Module):
    """Wraps a network and notes whether an all-4s (test) sequence ever went through it."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.saw_test = inner, False

    def forward(self, inputs, state=None):
        self.saw_test |= bool((inputs == 4).all(dim=1).any())
        return self.inner(inputs, state)


def test_without_test_evaluation_the_test_split_is_never_touched():
    nets: list[Spy] = []

    def build(shape, hidden_size, num_layers):
        nets.append(Spy(REFERENCE_MODEL.build(shape, hidden_size, num_layers)))
        return nets[-1]

    spy, task = Model("spy", "a GRU that notes what it sees", build), NextToken(marked_test=True)
    train_cell(task, spy, 0, CPU, task.recipe)
    assert nets[-1].saw_test  # the one test evaluation shows it...
    outcome = train_cell(task, spy, 0, CPU, task.recipe, evaluate_test=False)
    assert not nets[-1].saw_test  # ...and without it the network never saw a test sequence
    metrics = outcome.metrics
    assert metrics["test_evaluations"] == 0
    assert not [k for k in metrics if k.startswith(("test_", "task_")) and k != "test_evaluations"]
    assert metrics["val_accuracy"] is not None


def test_a_task_metric_as_primary_selects_on_its_validation_value():
    @dataclass
    class OwnMetric(NextToken):
        primary_metric = "task_last_accuracy"

        def evaluate(self, net, data, curve):
            logits, _ = net(data.test_inputs, None)
            hits = logits[:, -1].argmax(-1) == data.test_targets[:, -1]
            return {"last_accuracy": float(hits.float().mean())}

    task = OwnMetric()
    outcome = train_cell(task, REFERENCE_MODEL, 0, CPU, task.recipe)
    values = [row["val_task_last_accuracy"] for row in outcome.curve]
    assert all(v is not None for v in values)
    best = outcome.metrics["best_epoch"]
    assert values[best - 1] == max(values) == outcome.metrics["val_task_last_accuracy"]
    assert outcome.metrics["task_last_accuracy"] is not None


@pytest.mark.parametrize(
    ("declared", "loads"),
    [(1, True), ("1", True), ("1.0", True), ("1.1", True), ("1.2", True), ("1.3", False),
     (2, False), ("2.0", False), (0, False), ("one", False), (1.1, False), (True, False)],
)  # fmt: skip
def test_plugin_api_versions_older_minor_ones_load(declared, loads):
    assert (api_refusal(declared) is None) == loads
