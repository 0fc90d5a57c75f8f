"""Each cell checks the contract before training and blames the side at fault, with its package.

Without these checks a model with one logit too many trained silently and was ranked, a value
model of the wrong width trained on a broadcast MSE, and held-out targets one step short failed
with a torch error blamed on the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import torch

from harness import Model, Recipe, Task, TaskData, TaskShape, hookimpl
from harness.grid.cells import Cell, execute_cell
from harness.plugin_api.manager import load_plugins
from harness.training.contract import ContractError, check_data, check_first_forward


def build_wide(shape, hidden_size, num_layers):
    """A GRU with a head one output too wide: output_size + 1 logits or values per step."""

    class Wide(torch.nn.Module):
        def __init__(self):
            super().__init__()
            size = shape.input_size
            self.embed = torch.nn.Embedding(size, 4) if shape.input_kind == "tokens" else None
            self.gru = torch.nn.GRU(4 if self.embed else size, hidden_size, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, shape.output_size + 1)

        def forward(self, inputs, state=None):
            x = self.embed(inputs) if self.embed is not None else inputs
            hidden, state = self.gru(x, state)
            return self.head(hidden), state

    return Wide()


def build_dict_state(shape, hidden_size, num_layers):
    net = build_wide(shape, hidden_size, num_layers)
    net.head = torch.nn.Linear(hidden_size, shape.output_size)
    forward = net.forward

    def with_dict(inputs, state=None):
        out, h = forward(inputs, None if state is None else state["h"])
        return out, {"h": h}

    net.forward = with_dict
    return net


@dataclass
class ShortTargets(Task):
    """Held-out targets one step shorter than the held-out inputs."""

    name = "short-targets"
    description = "copy the input, with held-out targets one step short"
    shape = TaskShape("tokens", 4, "classes", 4)
    recipe = Recipe(epochs=1, batch_size=8, lr=0.01, hidden_size=8)

    def make_data(self, seed):
        x = torch.randint(0, 4, (16, 6), generator=torch.Generator().manual_seed(seed))
        return TaskData(x, x.clone(), x.clone(), x[:, :-1].clone())


class Plugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(ShortTargets())

    @staticmethod
    @hookimpl
    def register_models(register):
        register(Model(name="wide", description="one output too many", build=build_wide))
        register(Model(name="dict-state", description="a dict state", build=build_dict_state))


@pytest.fixture(scope="module")
def registry():
    return load_plugins(allow=["hello", "sine", "gru"], extra=[("contract-trial", Plugin())])


def run_cell(registry, task: str, model: str) -> dict:
    torch.set_num_threads(1)
    recipe = registry.tasks[task].recipe.with_overrides(epochs=1)
    options = {"train_curves": 4, "test_curves": 4} if task == "sine" else {}
    return execute_cell(Cell(task, model, 0, recipe, "cpu", options), registry)


@pytest.mark.parametrize(
    ("task", "expected"),
    [("hello", r"\(1, 5, 4\) \(logits over 4 per step\), not \(1, 5, 5\)"),
     ("sine", r"\(4, 49, 1\) \(values of 1 per step\), not \(4, 49, 2\)")],
)  # fmt: skip
def test_a_model_with_the_wrong_output_size_fails_before_training(registry, task, expected):
    record = run_cell(registry, task, "wide")
    assert record["status"] == "failed" and record["curve"] == []
    assert record["error"].startswith("broken contract: model 'wide': outputs must be")
    assert re.search(expected, record["error"]), record["error"]
    assert record["error"].endswith("[model plugin contract-trial ((in-process) )]")
    assert "\n" not in record["error"]


def test_a_model_with_a_state_the_trainer_cannot_carry_fails(registry):
    record = run_cell(registry, "hello", "dict-state")
    assert record["status"] == "failed"
    assert "the state holds a dict" in record["error"] and "[model plugin" in record["error"]


def test_task_data_that_does_not_fit_its_shape_blames_the_task(registry):
    record = run_cell(registry, "short-targets", "gru")
    assert record["status"] == "failed"
    assert record["error"].startswith("broken contract: task 'short-targets': test_targets (16, 5)")
    assert "one target per input step" in record["error"]
    assert record["error"].endswith("[task plugin contract-trial ((in-process) )]")


def test_a_good_pair_trains_as_before(registry):
    record = run_cell(registry, "hello", "gru")
    assert record["status"] == "ok" and len(record["curve"]) == 1


def test_the_checks_name_the_problem():
    shape = TaskShape("values", 2, "values", 1)
    x = torch.zeros(3, 5, 2)
    with pytest.raises(ContractError, match=r"\(N, T, 1\) float32") as info:
        check_data(shape, TaskData(x, x, x, x))
    assert info.value.culprit == "task"
    good = TaskData(x, torch.zeros(3, 5, 1), x, torch.zeros(3, 5, 1))
    check_data(shape, good)
    with pytest.raises(ContractError, match="fewer than scored_steps"):
        check_data(shape, good, scored_steps=6)

    def no_tuple(inputs, state=None):
        return torch.zeros(*inputs.shape[:2], 1)

    with pytest.raises(ContractError, match=r"must return \(outputs, state\)") as info:
        check_first_forward(no_tuple, shape, x, 2, carry_state=False)
    assert info.value.culprit == "model"

    def batch_last(inputs, state=None):
        return torch.zeros(*inputs.shape[:2], 1), torch.zeros(4, inputs.shape[0])

    check_first_forward(batch_last, shape, x, 2, carry_state=False)  # never carried: fine
    # API 1.2: the trainer takes the batch size from the inputs, so any state layout carries
    check_first_forward(batch_last, shape, x, 2, carry_state=True)


class Normed(torch.nn.Module):
    """Batch norm and dropout: what a check in training mode would change or draw from."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(1)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x, state=None):
        return self.drop(self.norm(x.transpose(1, 2)).transpose(1, 2)), None


def test_the_first_forward_check_leaves_the_network_as_it_found_it():
    net = Normed().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    check_first_forward(net, TaskShape("values", 1, "values", 1), torch.randn(4, 5, 1), 4, False)
    assert net.training
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name  # running statistics untouched
