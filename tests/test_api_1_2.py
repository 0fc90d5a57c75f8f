"""What plugin API 1.2 adds, end to end: unscored targets, tags and suites, model options and
limits, any state layout, optional packages, --until, and a failing task plugin's isolation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from harness import (
    IGNORE_INDEX,
    HarnessError,
    MissingDependency,
    Model,
    Recipe,
    Task,
    TaskData,
    TaskShape,
    hookimpl,
    require,
)
from harness.plugin_api.manager import load_plugins
from harness.settings.config import RunConfig, load_config
from harness.training.contract import ContractError, check_data
from harness.training.metrics import score
from harness.training.state import detach_state
from tests.conftest import assert_one_line, invoke

TOKENS = TaskShape("tokens", 4, "classes", 4)


class Fixed(torch.nn.Module):
    """Logits that always predict class 1, strongly."""

    def forward(self, x, state=None):
        logits = torch.zeros(*x.shape, 4)
        logits[..., 1] = 10.0
        return logits, state


def test_ignored_targets_enter_neither_loss_nor_accuracy():
    x = torch.zeros(2, 4, dtype=torch.long)
    y = torch.tensor([[IGNORE_INDEX, 1, IGNORE_INDEX, 0], [1, IGNORE_INDEX, IGNORE_INDEX, 1]])
    figures = score(Fixed(), x, y, "classes")
    assert figures["accuracy"] == pytest.approx(3 / 4)  # 3 of the 4 scored targets are 1
    scored = y != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(Fixed()(x)[0][scored], y[scored])
    assert figures["loss"] == pytest.approx(float(expected))


def test_the_contract_takes_ignored_targets_but_not_an_unscored_sequence():
    x = torch.zeros(2, 3, dtype=torch.long)
    good = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 2], [1, IGNORE_INDEX, 3]])
    check_data(TOKENS, TaskData(x, good, x, good))
    empty = torch.tensor([[IGNORE_INDEX] * 3, [1, 2, 3]])
    with pytest.raises(ContractError, match="every target -100: nothing to score"):
        check_data(TOKENS, TaskData(x, empty, x, good))
    with pytest.raises(ContractError, match="outside 0..3"):
        check_data(TOKENS, TaskData(x, torch.full((2, 3), -5), x, good))


def test_nested_states_with_none_members_detach():
    h = torch.ones(2, 3, requires_grad=True) * 2
    state = [(h, None), (None, (h, h))]
    detached = detach_state(state)
    assert isinstance(detached, list) and detached[0][1] is None
    assert not detached[0][0].requires_grad and not detached[1][1][1].requires_grad


@dataclass(frozen=True)
class WidthOptions:
    width: int = 3
    kind: str = "a"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be at least 1, not {self.width}")


def _build(shape, hidden_size, num_layers, options):
    from harness.models.layers import TorchRecurrent

    return TorchRecurrent(torch.nn.GRU, shape, options.width, num_layers)


def _limits(shape, options):
    if shape.length is not None and shape.length > 4:
        return f"serves up to 4 steps, not {shape.length}"
    return None


OPTIONED = Model("optioned", "a GRU whose width is an option", _build, options=WidthOptions())


def test_model_options_convert_check_and_reach_the_builder():
    chosen = OPTIONED.with_options(width="5")
    assert chosen.options.width == 5 and chosen.option_values() == {"width": 5, "kind": "a"}
    assert chosen.make(TOKENS, 16, 1).rnn.hidden_size == 5
    with pytest.raises(ValueError, match="model 'optioned' has no option 'depth'"):
        OPTIONED.with_options(depth=2)
    with pytest.raises(ValueError, match="option 'width' takes an int"):
        OPTIONED.with_options(width="wide")
    with pytest.raises(ValueError, match="width must be at least 1"):
        OPTIONED.with_options(width=0)
    with pytest.raises(ValueError, match="has no options"):
        Model("plain", "no options", _build).with_options(width=2)


def test_options_of_a_model_change_the_config_hash(registry):
    from harness.grid.runner import plan_grid

    def hashes(model_options):
        plan = plan_grid(
            registry, ["hello"], ["transformer"], [0], "cpu", {}, {}, model_options=model_options
        )
        return plan.cells[0].config_hash()

    assert hashes({}) != hashes({"transformer": {"heads": 2}})


def test_limits_make_a_pair_not_applicable():
    long_shape = TaskShape("tokens", 4, "classes", 4, length=9)
    model = Model("short", "short context", _build, options=WidthOptions(), limits=_limits)
    assert model.cannot_serve(long_shape) == "serves up to 4 steps, not 9"
    assert model.cannot_serve(TOKENS) is None


def test_the_transformer_declines_a_task_longer_than_its_context(registry):
    from harness.grid.runner import plan_grid

    options = {"transformer": {"context": 8}}
    plan = plan_grid(registry, ["mqar"], ["transformer"], [0], "cpu", {}, {}, model_options=options)
    assert not plan.cells and "context=8" in plan.not_applicable[0][1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "transformer.heads=many"], "model 'transformer' option 'heads' takes an int"),
        (["-o", "transformer.nope=1"], "model 'transformer' has no option 'nope'"),
        (["-o", "transformer.dropout=2"], "dropout"),
        (["-o", "nosuch.x=1"], "unknown task or model 'nosuch'"),
        (["--suite", "nosuchtag"], "no task has the tag 'nosuchtag'"),
        (["--until", "adding=high"], "--until takes VALUE or TASK=VALUE"),
        (["--until", "nosuch=0.5"], "unknown task 'nosuch'"),
    ],
)
def test_bad_model_options_suites_and_targets_are_one_line(tmp_path, args, message):
    result = invoke("run", "-t", "hello", "-m", "transformer", "--out", str(tmp_path), *args)
    assert_one_line(result, message)
    assert not (tmp_path / "run.json").exists()  # refused before a folder was made


def test_a_suite_picks_its_tagged_tasks(registry):
    from harness.session import resolve_names

    tasks, _ = resolve_names(RunConfig(suite=["memory"]), registry)
    assert tasks == ["adding", "copy", "induction-heads", "mqar", "selective-copy"]
    tasks, _ = resolve_names(RunConfig(suite=["memory"], tasks=["hello"]), registry)
    assert tasks[0] == "hello" and "mqar" in tasks


def test_until_applies_in_each_metric_direction():
    config = load_config(None, {"until": 0.99, "until_task": {"adding": 0.001}})
    assert config.until_for("mqar", True) == 0.99
    assert config.until_for("sine", False) is None  # a bare value is for higher-is-better tasks
    assert config.until_for("adding", False) == 0.001


def test_until_stops_a_cell_once_validation_reaches_it(registry):
    from harness.training.device import resolve_device
    from harness.training.train import Selection, train_cell

    task = registry.tasks["hello"]
    recipe = task.recipe
    run = train_cell(task, registry.models["gru"], 0, resolve_device("cpu"), recipe,
                     selection=Selection(until=1.0))  # fmt: skip
    assert run.metrics["val_accuracy"] == 1.0
    assert run.metrics["epochs_run"] < recipe.epochs and run.metrics["stopped_early"]


class Unavailable:
    @staticmethod
    @hookimpl
    def register_models(register):
        require("surely_not_an_installed_package", install="pip install x", offers=("xnet",))
        register(Model("xnet", "never", _build))


def test_a_missing_optional_package_lists_the_plugin_as_unavailable_not_broken():
    with pytest.raises(MissingDependency, match="pip install x"):
        require("surely_not_an_installed_package", install="pip install x")
    registry = load_plugins(allow=["hello"], extra=[("xnets", Unavailable())])
    assert not registry.broken and "xnet" not in registry.models
    assert registry.unavailable[0].offers == ("xnet",)
    from harness.session import resolve_names

    with pytest.raises(HarnessError, match="xnet needs surely_not_an_installed_package"):
        resolve_names(RunConfig(tasks=["hello"], models=["xnet"]), registry)


class Undecorated(Task):  # forgot @dataclass: its option would silently vanish
    length: int = 5
    name = "undecorated"
    shape = TOKENS
    recipe = Recipe(epochs=1, batch_size=2, lr=0.01)

    def make_data(self, seed):
        raise NotImplementedError


class UndecoratedPlugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(Undecorated())


def test_a_task_subclass_without_dataclass_is_refused_at_registration():
    registry = load_plugins(allow=[], extra=[("undecorated", UndecoratedPlugin())])
    assert "undecorated" not in registry.tasks
    assert "Undecorated is not a @dataclass: length would be options" in registry.broken[0].error


@dataclass
class Exploding(Task):
    name = "exploding"
    shape = TOKENS
    recipe = Recipe(epochs=1, batch_size=4, lr=0.01, hidden_size=4)

    def make_data(self, seed):
        raise RuntimeError("the data server is down")


class ExplodingPlugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(Exploding())


@pytest.mark.slow
def test_a_task_whose_data_raises_fails_only_its_own_cells(tmp_path):
    from harness.api import execute_run

    registry = load_plugins(allow=["hello", "gru"], extra=[("exploding", ExplodingPlugin())])
    settings = {"out": str(tmp_path), "workers": 1, "epochs": 2, "tasks": ["hello", "exploding"]}
    notices: list[str] = []
    result = execute_run(load_config(None, settings), registry=registry, on_notice=notices.append)
    status = dict(zip(result.cells["task"], result.cells["status"]))
    assert status == {"hello": "ok", "exploding": "failed"}
    error = result.cells.set_index("task").loc["exploding", "error"]
    assert "the data server is down" in error and "exploding" in error
    assert any("exploding" in notice for notice in notices)


def test_tune_searches_a_models_declared_options_beside_the_recipe(registry):
    from harness.grid.cells import Cell
    from harness.tuning import apply_params, check_space, default_point, search_space

    model = registry.models["transformer"]
    recipe = registry.tasks["hello"].recipe
    space = search_space(recipe, RunConfig(), model)
    assert {"lr", "model.heads", "model.dropout"} <= set(space)
    check_space(recipe, space, model)  # every value makes a recipe and valid options
    point = default_point(recipe, space, model.option_values())
    assert point["model.heads"] == 4 and point["lr"] == recipe.lr
    cell = Cell("hello", "transformer", 0, recipe, "cpu")
    tried = apply_params(cell, {"lr": 0.01, "model.heads": 2})
    assert tried.recipe.lr == 0.01 and tried.model_options == {"heads": 2}
    assert tried.config_hash() != cell.config_hash()
    with pytest.raises(ValueError, match="model.heads=0 makes no recipe"):
        from harness import Choice

        check_space(recipe, {"model.heads": Choice(0)}, model.with_options())
