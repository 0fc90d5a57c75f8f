"""The conformance kit: every built-in passes it, and it catches each broken contract."""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import harness
from harness import Model, Recipe, Task, TaskData, TaskShape
from harness.plugin_api import hookspecs
from harness.plugin_api.task import Baseline
from harness.testing import (
    check_import_is_light,
    check_model,
    check_task,
    conformance_cases,
    conformance_tests,
)

# One line runs the whole kit over everything a distribution registers: here, the built-ins.
test_builtin_plugins = conformance_tests("harness", fixed_data={"hello"})

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_builtin_cases_cover_every_builtin(registry):
    ids = {case.id for case in conformance_cases("harness", registry=registry)}
    builtins = {f"task-{n}" for n in registry.tasks} | {f"model-{n}" for n in registry.models}
    builtins = {i for i in builtins if registry.origin(*i.split("-", 1)).package == "harness"}
    assert builtins and builtins <= ids
    assert {"import-consecutive", "import-gru"} <= ids


def test_unknown_package_gives_one_failing_case(registry):
    [case] = conformance_cases("no-such-package", registry=registry)
    with pytest.raises(AssertionError, match="no plugin of package 'no-such-package'.*installed"):
        case()


def test_pytest_plugin_fixtures(harness_registry, harness_check_task, harness_check_model):
    assert "hello" in harness_registry.tasks
    assert harness_check_task is check_task and harness_check_model is check_model


# ---- tasks that break the contract, one way each ----------------------------------------


@dataclass
class Good(Task):
    size: int = 6

    name = "good"
    description = "copy the input"
    shape = TaskShape("values", 1, "values", 1)
    recipe = Recipe(epochs=1, batch_size=2, lr=0.01)

    def make_data(self, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.size, 4, 1, generator=g)
        return TaskData(x, x.clone(), x[:2].clone(), x[:2].clone())

    def evaluate(self, net, data, curve):
        return {"mean_output": float(net(data.test_inputs, None)[0].mean())}


def make_task(**overrides):
    """A subclass of Good with some class attributes or methods replaced."""
    return dataclass(type("Variant", (Good,), overrides))()


def test_a_good_task_passes():
    check_task(Good())
    check_task(Good(), train_epochs=0)


BAD_TASKS = {
    "name with space": ({"name": "my task"}, "name 'my task'"),
    "name with cell-id separator": ({"name": "a__b"}, "must not contain '__'"),
    "no description": ({"description": ""}, "description must be a non-empty string"),
    "primary metric is not a column": ({"primary_metric": "task_nope"}, "not a column of its"),
    "primary metric is a train column": ({"primary_metric": "train_loss"}, "must be a test column"),
    "direction contradicts the metric": ({"higher_is_better": True}, "better when lower"),
    "perplexity on values": ({"primary_metric": "test_perplexity"}, "needs class outputs"),
    "accuracy without tolerance": (
        {"primary_metric": "test_accuracy", "higher_is_better": True}, "needs an accuracy_tolerance"
    ),
    "described metric never returned": (
        {"metric_descriptions": {"rollout": "..."}}, "names rollout, which evaluate"
    ),
    "recipe is a dict": ({"recipe": {"epochs": 1}}, "recipe must be a harness.Recipe"),
    "targets one per sequence": (
        {"make_data": lambda self, s: TaskData(*[torch.zeros(3, 4, 1), torch.zeros(3, 1, 1)] * 2)},
        "one target per input step",
    ),
    "float64 inputs": (
        {"make_data": lambda self, seed: TaskData(*[torch.zeros(3, 4, 1).double()] * 4)},
        r"must be \(N, T, 1\) float32",
    ),
    "global random state": (
        {"make_data": lambda self, seed: TaskData(*[torch.randn(3, 4, 1)] * 4)},
        "never from a global random state",
    ),
    "seed does not matter": (
        {"make_data": lambda self, seed: TaskData(*[torch.ones(3, 4, 1)] * 4)},
        "seed_varies=False",
    ),
    "list metric": (
        {"evaluate": lambda self, net, data, curve: {"curve": [1, 2]}}, "put lists for plots under"
    ),
    "baseline key without task_ prefix": (
        {
            "evaluate": lambda self, net, data, curve: {"mse": 1.0},
            "baselines": lambda self, data: [Baseline("zero", "predict 0", {"mse": 1.0})],
        },
        "baseline 'zero' names 'mse', which is not a column",
    ),
    "own metric named like a core column": (
        {"evaluate": lambda self, net, data, curve: {"test_loss": 1.0}},
        "'test_loss', the name of one of the core's columns",
    ),
    "own metric named like a count column": (
        {"evaluate": lambda self, net, data, curve: {"steps_n": 1.0}}, "ending in _ci95 or _n"
    ),
    "direction not a known word": (
        {"metric_directions": {"mean_output": "up"}}, "must be 'higher' or 'lower', not 'up'"
    ),
    "direction of a metric never returned": (
        {"metric_directions": {"nope": "lower"}}, "metric_directions names 'nope', which"
    ),
    "optimum of an own metric without a direction": (
        {"optimum": lambda self, data: {"task_mean_output": 0.0}},
        "does not say whether higher or lower is better for 'mean_output'",
    ),
    "own primary metric against its direction": (
        {"primary_metric": "task_mean_output", "metric_directions": {"mean_output": "higher"}},
        "says 'mean_output' is better higher, but higher_is_better is False",
    ),
    "optimum not numeric": (
        {"optimum": lambda self, data: {"test_loss": "0"}}, r"optimum\(\)\['test_loss'\] is '0'"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_TASKS))
def test_kit_catches_a_broken_task(case):
    overrides, message = BAD_TASKS[case]
    with pytest.raises(AssertionError, match=message):
        check_task(make_task(**overrides))


@pytest.mark.parametrize(
    "attributes",
    [{"__annotations__": {"steps": "int"}, "steps": 3}, {"size": 3}],
    ids=["a new option", "a new default"],
)
def test_kit_catches_a_task_subclass_without_dataclass(attributes):
    plain = type("Plain", (Good,), attributes)()  # no @dataclass: the option vanishes
    assert "steps" not in plain.options() and plain.options()["size"] == 6
    with pytest.raises(AssertionError, match="Plain is not a @dataclass: (steps|size) would be"):
        check_task(plain)


def test_a_subclass_that_adds_no_options_needs_no_dataclass():
    check_task(type("Renamed", (Good,), {"name": "renamed"})(), train_epochs=0)


def test_fixed_data_is_allowed_when_declared():
    fixed = make_task(make_data=lambda self, seed: TaskData(*[torch.ones(3, 4, 1)] * 4))
    check_task(fixed, seed_varies=False)


# ---- models that break the contract, one way each ---------------------------------------


class GRUNet(nn.Module):
    """A correct network; the broken ones below change one thing each."""

    def __init__(self, shape: TaskShape, hidden: int, layers: int) -> None:
        super().__init__()
        self.shape = shape
        self.rnn = nn.GRU(shape.input_size, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, shape.output_size)

    def encode(self, x):
        return nn.functional.one_hot(x, self.shape.input_size).float() if x.dim() == 2 else x

    def forward(self, x, state=None):
        h, state = self.rnn(self.encode(x), state)
        return self.head(h), state


class ForgetsState(GRUNet):
    def forward(self, x, state=None):
        return super().forward(x, None)


class MixesBatch(GRUNet):
    def forward(self, x, state=None):
        out, state = super().forward(x, state)
        return out - out.mean(dim=0, keepdim=True), state


class NoHead(GRUNet):
    def forward(self, x, state=None):
        return self.rnn(self.encode(x), state)


class UnusedLayer(GRUNet):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.spare = nn.Linear(3, 3)


class BatchFirstState(GRUNet):
    def forward(self, x, state=None):
        out, state = super().forward(
            x, None if state is None else state.transpose(0, 1).contiguous()
        )
        return out, state.transpose(0, 1)


def model_of(net: type, **fields) -> Model:
    return Model(name=fields.pop("name", "net"), description="a test net", build=net, **fields)


def test_a_good_model_passes():
    check_model(model_of(GRUNet))


BAD_MODELS = {
    "state not carried": (ForgetsState, "with the state carried differ from the whole sequence"),
    "sequences see each other": (MixesBatch, "change with the other sequences in its batch"),
    "outputs are hidden states": (NoHead, r"outputs must be \(batch, time, output_size\)"),
    "parameter never used": (UnusedLayer, "no gradient reaches spare.weight"),
}


def test_a_batch_first_state_passes_the_kit():
    """API 1.2: the trainer takes the batch size from the inputs, never from the state."""
    check_model(model_of(BatchFirstState))


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_kit_catches_a_broken_model(case):
    net, message = BAD_MODELS[case]
    with pytest.raises(AssertionError, match=message):
        check_model(model_of(net))


def test_kit_checks_only_the_kinds_a_model_claims():
    class TokensOnly(GRUNet):
        def encode(self, x):
            assert x.dim() == 2, "tokens only"
            return super().encode(x)

    check_model(model_of(TokensOnly, input_kinds={"tokens"}))
    with pytest.raises(AssertionError, match="tokens only"):
        check_model(model_of(TokensOnly))


def test_kit_catches_a_heavy_import(tmp_path, monkeypatch):
    (tmp_path / "heavy_plugin.py").write_text("import torch\n")
    (tmp_path / "light_plugin.py").write_text("def build():\n    import torch\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    check_import_is_light("light_plugin")
    with pytest.raises(AssertionError, match="importing it imports torch"):
        check_import_is_light("heavy_plugin")


def test_importing_the_kit_does_not_import_torch():
    import subprocess

    code = "import sys, harness.testing; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# ---- the contract is documented: a hook or field missing from docs/plugins.md fails -------


def documented_names() -> dict[str, list[str]]:
    from harness.plugin_api.task import Task as TaskBase

    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    classes = {c.__name__: [f.name for f in dataclasses.fields(c)] for c in (
        TaskShape, Recipe, TaskData, Baseline, Model)}  # fmt: skip
    task = sorted(
        {n for n in [*vars(TaskBase), *TaskBase.__annotations__] if not n.startswith("_")}
    )
    return {"hooks": hooks, **classes, "Task": task}


def test_docs_cover_every_hook_and_contract_field():
    text = DOCS.read_text()
    missing = [
        f"{where}.{name}"
        for where, names in documented_names().items()
        for name in names
        if not re.search(rf"`{re.escape(name)}\b", text)
    ]
    assert not missing, f"docs/plugins.md does not document: {', '.join(missing)}"
    assert f'HARNESS_API = "{harness.PLUGIN_API_VERSION}"' in text
    for variable in ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS"):
        assert variable in text
