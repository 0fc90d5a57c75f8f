"""Hardening, third round (#20): a task plugin whose shape, data, optimum or baselines raise
fails only its own cells; the kit holds an older minor API's plugin to that API; a task class
without @dataclass is refused at registration; own metrics keep their types in cells.parquet;
leaderboard.md keeps plugin HTML inert; `harness predict` gives no unsafe advice and resolves
paths; a bad task option names its task; absurd numbers are refused; run.json says how a run
ended."""

from __future__ import annotations

import json
import shutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from harness import Baseline, Model, Recipe, Task, TaskData, TaskShape, hookimpl
from harness.plugin_api.manager import load_plugins
from tests.conftest import assert_one_line, invoke
from tests.distributions import env_with, make_distribution

VALUES = TaskShape("values", 1, "values", 1)
TINY = Recipe(epochs=1, batch_size=4, lr=0.01, hidden_size=4)


@dataclass
class Copy(Task):
    name = "h3-copy"
    description = "copy the input; own float metric exact"
    shape = VALUES
    recipe = TINY
    metric_descriptions = {"exact": "a number here"}
    metric_directions = {"exact": "higher"}

    def make_data(self, seed):
        import torch

        x = torch.randn(8, 3, 1, generator=torch.Generator().manual_seed(seed))
        return TaskData(x, x, x, x)

    def evaluate(self, net, data, curve):
        return {"exact": 0.25}


@dataclass
class Flag(Copy):
    name = "h3-flag"
    description = "own boolean exact, a string metric and a baseline with HTML in their text"
    metric_descriptions = {"exact": "a boolean here", "shout": "text"}

    def evaluate(self, net, data, curve):
        return {"exact": True, "shout": "<script>alert('metric')</script>"}

    def baselines(self, data):
        return [Baseline("<script>alert('base')</script>", "html in a name", {"test_loss": 9.0})]


@dataclass
class BadData(Copy):
    name = "h3-baddata"

    def make_data(self, seed):
        raise ValueError("the data server is down")


@dataclass
class BadOptimum(Copy):
    name = "h3-badopt"

    def optimum(self, data):
        raise RuntimeError("no optimum today")


@dataclass
class BadBaselines(Copy):
    name = "h3-badbase"

    def baselines(self, data):
        raise ValueError("no baselines today")


@dataclass
class BadShape(Copy):
    size: int = 1
    name = "h3-badshape"

    @property
    def shape(self):  # type: ignore[override]
        if self.size > 1:
            raise RuntimeError("shape exploded")
        return VALUES


def _refuse(shape, options):
    raise RuntimeError("limits exploded")


def _never_built(shape, hidden_size, num_layers):
    raise NotImplementedError


class Plugin:
    HARNESS_API = "1.2"

    @staticmethod
    @hookimpl
    def register_tasks(register):
        for task in (Copy, Flag, BadData, BadOptimum, BadBaselines, BadShape):
            register(task())

    @staticmethod
    @hookimpl
    def register_models(register):
        register(Model("h3-limited", "its limits raise", _never_built, limits=_refuse))


@pytest.fixture(scope="module")
def h3_registry():
    return load_plugins(allow=["rnn"], extra=[("h3", Plugin())])


BROKEN = {
    "h3-baddata": "make_data(0): ValueError: the data server is down [task plugin h3",
    "h3-badopt": "optimum(): RuntimeError: no optimum today [task plugin h3",
    "h3-badbase": "baselines(): ValueError: no baselines today [task plugin h3",
}


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, h3_registry):
    from harness.api import execute_run
    from harness.settings.config import RunConfig

    out = tmp_path_factory.mktemp("h3") / "run"
    notices: list[str] = []
    config = RunConfig(
        tasks=["h3-copy", "h3-flag", *BROKEN],
        models=["rnn"],
        epochs=1,
        executor="local",
        timing=False,
        out=str(out),
    )
    result = execute_run(config, registry=h3_registry, on_notice=notices.append)
    return out, result, notices


# ---- 1. a task plugin that raises before its cells run fails only its cells -------------------


def test_a_task_whose_data_optimum_or_baselines_raise_fails_only_its_cells(mixed_run):
    out, result, notices = mixed_run
    cells = result.cells.set_index("task")
    for task, error in BROKEN.items():
        assert cells.loc[task, "status"] == "failed", task
        assert cells.loc[task, "error"].startswith(error), cells.loc[task, "error"]
        assert cells.loc[task, "error"].endswith("(in-process) )]")
        assert any(n.startswith(f"task {task}: its plugin failed") for n in notices), notices
    assert cells.loc["h3-copy", "status"] == "ok" and cells.loc["h3-flag", "status"] == "ok"
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["tasks"]["h3-badopt"]["error"].startswith(BROKEN["h3-badopt"])
    assert "## Cells that did not finish" in (out / "leaderboard.md").read_text()


def test_shape_or_limits_that_raise_fail_their_cells_at_planning(h3_registry):
    from harness.session import Session
    from harness.settings.config import RunConfig

    config = RunConfig(
        tasks=["h3-badshape", "h3-copy"],
        models=["rnn", "h3-limited"],
        options={"h3-badshape": {"size": 2}},
        params=500,  # the sizing search must not touch a task whose shape raises
    )
    session = Session.plan(config, registry=h3_registry)
    failed = {(c.task, c.model): error for c, error in session.grid.failed}
    assert failed[("h3-badshape", "rnn")].startswith("shape: RuntimeError: shape exploded [task")
    assert failed[("h3-copy", "h3-limited")].startswith(
        "limits(): RuntimeError: limits exploded [model plugin h3"
    )
    assert [(c.task, c.model) for c in session.grid.cells] == [("h3-copy", "rnn")]
    assert session.metas["h3-badshape"].error.startswith("shape: RuntimeError: shape exploded")


RAISING = """
from dataclasses import dataclass

from harness import Recipe, Task, TaskData, TaskShape, hookimpl

HARNESS_API = "1.1"


@dataclass
class Raising(Task):
    name = "raising"
    description = "its optimum raises"
    shape = TaskShape("values", 1, "values", 1)
    recipe = Recipe(epochs=1, batch_size=4, lr=0.01, hidden_size=4)

    def make_data(self, seed):
        import torch

        x = torch.randn(8, 3, 1, generator=torch.Generator().manual_seed(seed))
        return TaskData(x, x, x, x)

    def optimum(self, data):
        raise RuntimeError("the optimum service is down")


@hookimpl
def register_tasks(register):
    register(Raising())
"""


@pytest.mark.slow
def test_a_plain_harness_run_with_a_raising_task_plugin_installed(tmp_path, cli):
    root = make_distribution(
        tmp_path / "dist", "harness-raising", "0.4.0", {"harness_raising": RAISING},
        {"raising": "harness_raising"},
    )  # fmt: skip
    env = {**env_with(root), "HARNESS_PLUGINS": "raising,hello,rnn"}
    out = tmp_path / "run"
    result = cli("run", "-m", "rnn", "--epochs", "1", "--workers", "1", "--out", str(out), env=env)
    assert result.returncode == 1, result.stderr  # failed cells, a finished run
    assert "Traceback" not in result.stdout + result.stderr
    cells = pd.read_csv(out / "cells.csv").set_index("task")
    assert cells.loc["hello", "status"] == "ok"
    assert cells.loc["raising", "status"] == "failed"
    assert cells.loc["raising", "error"] == (
        "optimum(): RuntimeError: the optimum service is down "
        "[task plugin raising (harness-raising 0.4.0)]"
    )
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["timing"]["failed"] == []


# ---- 2. the kit holds a plugin to the API version it declares ----------------------------------


@dataclass
class Undirected(Copy):
    name = "h3-undirected"
    metric_directions = {}

    def optimum(self, data):
        return {"task_exact": 1.0}


def test_an_own_metric_without_a_direction_warns_a_1_1_plugin_and_fails_a_1_2_one():
    from harness.testing import ConformanceWarning, check_task

    with pytest.warns(ConformanceWarning, match="metric_directions does not say .* API 1.1"):
        check_task(Undirected(), train_epochs=0, api="1.1")
    with pytest.raises(AssertionError, match="metric_directions does not say"):
        check_task(Undirected(), train_epochs=0, api="1.2")
    with pytest.raises(AssertionError, match="metric_directions does not say"):
        check_task(Undirected(), train_epochs=0)  # this module declares nothing: current API


def test_conformance_cases_read_the_api_the_entry_point_declares(monkeypatch):
    from harness.testing import ConformanceWarning, conformance_cases

    module = types.ModuleType("h3_old_plugin")
    module.HARNESS_API = "1.1"

    @hookimpl
    def register_tasks(register):
        register(Undirected())

    module.register_tasks = register_tasks
    monkeypatch.setitem(sys.modules, "h3_old_plugin", module)
    registry = load_plugins(allow=[], extra=[("h3-old", module)])
    (case,) = conformance_cases("(in-process)", registry=registry, light_imports=False)
    with pytest.warns(ConformanceWarning):
        case()


# ---- 3. a Task subclass without @dataclass is refused at registration --------------------------


class NewDefault(Copy):  # no @dataclass: the new default would silently not be an option
    name = "h3-newdefault"
    size = 3


class Middle(Copy):  # no @dataclass: its option vanishes from every subclass
    width: int = 2


@dataclass
class Leaf(Middle):
    name = "h3-leaf"


class Undecorated:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(NewDefault())
        register(Leaf())


@dataclass
class WithSize(Copy):
    size: int = 1
    name = "h3-withsize"


class NewDefaultOfAnOption(WithSize):
    name = "h3-newdefault-option"
    size = 3


class Overriding:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(NewDefaultOfAnOption())


def test_a_task_class_without_dataclass_is_refused_with_the_kit_message():
    from harness.testing import check_task

    registry = load_plugins(
        allow=["hello"], extra=[("h3-undecorated", Undecorated()), ("h3-over", Overriding())]
    )
    assert "hello" in registry.tasks  # the others load
    errors = sorted(b.error for b in registry.broken)
    assert len(errors) == 2 and not {"h3-leaf", "h3-newdefault-option"} & set(registry.tasks)
    assert errors[0].startswith("task 'h3-leaf': Middle is not a @dataclass: width would be")
    assert errors[1].startswith(
        "task 'h3-newdefault-option': NewDefaultOfAnOption is not a @dataclass: size would be"
    )
    with pytest.raises(AssertionError) as kit:
        check_task(NewDefaultOfAnOption(), train_epochs=0)
    assert errors[1].removeprefix("task 'h3-newdefault-option': ") in str(kit.value)


# ---- 4. own metrics keep their types in cells.parquet -----------------------------------------


def test_colliding_own_metrics_keep_each_tasks_type_in_parquet(mixed_run):
    import pyarrow.parquet as pq

    out, _, _ = mixed_run
    schema = pq.read_schema(out / "cells.parquet")
    assert "task_exact" not in schema.names
    assert str(schema.field("task_exact__h3-flag").type) == "bool"
    assert str(schema.field("task_exact__h3-copy").type) == "double"
    cells = pd.read_parquet(out / "cells.parquet").set_index("task")
    assert cells.loc["h3-flag", "task_exact__h3-flag"] is True
    assert cells.loc["h3-copy", "task_exact__h3-copy"] == 0.25
    assert list(pd.read_csv(out / "cells.csv").columns) == schema.names  # one layout in both
    board = pd.read_csv(out / "leaderboard.csv").set_index(["task", "model"])
    assert float(board.loc[("h3-copy", "rnn"), "task_exact"]) == 0.25  # leaderboard: as before


def test_own_metrics_of_one_kind_stay_one_column():
    from harness.report.tables import typed_per_task

    frame = pd.DataFrame({"task": ["a", "b", "b"], "task_x": [1, 0.5, None], "task_y": ["s", 1, 2]})
    stored = typed_per_task(frame)
    assert list(stored.columns) == ["task", "task_x", "task_y__a", "task_y__b"]
    assert stored["task_y__a"].tolist()[0] == "s" and stored["task_y__b"].tolist()[1:] == [1, 2]


# ---- 5. leaderboard.md keeps plugin HTML inert -------------------------------------------------


def test_leaderboard_markdown_escapes_html_in_table_cells(mixed_run):
    out, _, _ = mixed_run
    text = (out / "leaderboard.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert not any("<script>" in row for row in rows), [r for r in rows if "<script>" in r]
    assert any("(&lt;script&gt;alert('base')&lt;/script&gt;)" in row for row in rows)
    assert any("&lt;script&gt;alert('metric')&lt;/script&gt;" in row for row in rows)


# ---- 6. harness predict --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    import harness

    out = tmp_path_factory.mktemp("saved") / "run"
    harness.run(
        tasks=["hello"], models=["rnn"], epochs=1, workers=1, save_models=True, out=str(out),
        timing=False,
    )  # fmt: skip
    return out


WEIGHTS = "models/hello__rnn__seed0.pt"
CELL = "cells/hello__rnn__seed0.json"


def _predict(out: Path):
    return invoke("predict", str(out), "-t", "hello", "-m", "rnn", "--prefix", "he")


def _point_at(out: Path, model_file: str) -> None:
    record = json.loads((out / CELL).read_text())
    record["model_file"] = model_file
    (out / CELL).write_text(json.dumps(record))


@pytest.mark.parametrize("damage", ["garbage", "payload"])
def test_a_bad_weights_file_gives_no_advice_to_load_it_unsafely(saved_run, tmp_path, damage):
    import torch

    out = tmp_path / "run"
    shutil.copytree(saved_run, out)
    if damage == "garbage":
        (out / WEIGHTS).write_bytes(b"\x00garbage" * 50)
    else:
        torch.save({"config": "x", "state_dict": types.SimpleNamespace()}, out / WEIGHTS)
    result = _predict(out)
    assert_one_line(result, "it is damaged or holds more than tensors and plain values")
    assert "weights_only" not in result.stderr and "trust" not in result.stderr


def test_a_model_file_is_resolved_before_it_is_checked(saved_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(saved_run, out)
    _point_at(out, "models/../models/hello__rnn__seed0.pt")
    result = _predict(out)
    assert result.exit_code == 0, result.output
    _point_at(out, "models/other.pt")
    assert_one_line(_predict(out), "is not this cell's weights (models/hello__rnn__seed0.pt)")
    _point_at(out, "models/../../elsewhere/hello__rnn__seed0.pt")
    assert_one_line(_predict(out), "points outside")


# ---- 7. a bad task option names its task and option -------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("consecutive.window=-3", "task 'consecutive' option window=-3: window must be at least"),
        ("sine.points=1", "task 'sine' option points=1: points must be at least 2, not 1"),
    ],
)
def test_a_task_option_its_checks_refuse_names_the_task(tmp_path, option, message):
    task = option.split(".")[0]
    out = tmp_path / "o"
    args = ("-t", task, "-m", "rnn", "-o", option, "--out", str(out))
    assert_one_line(invoke("run", *args), message)
    assert not out.exists()


def test_a_config_option_of_the_wrong_type_is_one_line(tmp_path):
    config = tmp_path / "h.toml"
    config.write_text("[tool.harness.options.consecutive]\nwindow = [3]\n")
    out = tmp_path / "o"
    args = ("-t", "consecutive", "-m", "rnn", "--config", str(config), "--out", str(out))
    assert_one_line(invoke("run", *args), "task 'consecutive' option window=[3]:")
    assert not out.exists()


# ---- 8. absurd numbers are refused -------------------------------------------------------------

HUGE = str(10**20)
ABSURD = {
    "epochs 1e20": (["--epochs", HUGE], "epochs must be at most 1,000,000"),
    "recipe epochs": (["-r", "epochs=2000000"], "epochs must be at most 1,000,000"),
    "batch size 1e20": (["-r", f"batch_size={HUGE}"], "batch_size must be at most 10,000,000"),
    "batch size 0": (["-r", "batch_size=0"], "batch_size must be at least 1"),
    "hidden size": (["--hidden-size", str(10**11)], "hidden_size must be at most 65,536"),
    "layers": (["-r", "num_layers=100000"], "num_layers must be at most 1,000"),
    "patience": (["--patience", HUGE], "patience must be at most 1,000,000"),
    "threads": (["--threads", HUGE], "threads must be at most 4,096"),
    "lr nan": (["--lr", "nan"], "lr must be a positive finite number"),
    "lr inf": (["-r", "lr=inf"], "lr must be a positive finite number"),
    "seeds huge": (["--seeds", HUGE], "seeds must be at most 10,000"),
}


@pytest.mark.parametrize(("args", "message"), ABSURD.values(), ids=ABSURD.keys())
def test_an_absurd_number_is_refused_before_anything_starts(tmp_path, args, message):
    out = tmp_path / "o"
    assert_one_line(invoke("run", "-t", "hello", "-m", "rnn", *args, "--out", str(out)), message)
    assert not out.exists()


def test_an_absurd_number_in_the_config_file_is_refused(tmp_path):
    config = tmp_path / "h.toml"
    config.write_text("[tool.harness]\nepochs = 100000000000000000\n")
    assert_one_line(
        invoke("run", "-t", "hello", "-m", "rnn", "--config", str(config)),
        "epochs must be at most 1,000,000",
    )
    assert_one_line(invoke("tune", "-t", "hello", "-m", "rnn", "--trials", HUGE), "trials must be")


# ---- 9. run.json says how a run ended ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("the disk went away"), "failed"), (KeyboardInterrupt(), "interrupted")],
    ids=["error", "ctrl-c"],
)
def test_an_error_after_the_folder_exists_leaves_run_json_saying_so(
    tmp_path, h3_registry, error, status
):
    from harness.session import Session
    from harness.settings.config import RunConfig

    out = tmp_path / "r"
    config = RunConfig(tasks=["h3-copy"], models=["rnn"], executor="local", out=str(out))
    session = Session.plan(config, registry=h3_registry)
    with pytest.raises(type(error)), session.open():
        assert json.loads((out / "run.json").read_text())["status"] == "running"
        raise error
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == status
    if status == "failed":
        assert info["error"] == "RuntimeError: the disk went away"
