"""A third-party plugin package written as a new author might, mistakes included, installed as a
real distribution (not in this repository) and run through the `harness` command.

It brings a task whose own float ``exact`` collides with hello's boolean ``exact``, a task whose
held-out targets are one step short, and a model with one output too many. The run must finish
every good cell, fail each bad one with one line naming the plugin at fault and its package,
and still write every table, the leaderboard and the plots; `harness report` must rebuild them.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.distributions import env_with, make_distribution

TASKS = """
from dataclasses import dataclass

from harness import Baseline, Recipe, Task, TaskData, TaskShape, hookimpl

HARNESS_API = 1


@dataclass
class Fraction(Task):
    length: int = 6

    name = "fraction"
    description = "copy the input tokens; exact is the fraction of sequences copied exactly"
    shape = TaskShape("tokens", 5, "classes", 5)
    recipe = Recipe(epochs=2, batch_size=16, lr=0.02, hidden_size=8)
    primary_metric = "task_exact"
    higher_is_better = True
    metric_descriptions = {"exact": "fraction of held-out sequences copied exactly"}
    metric_directions = {"exact": "higher"}

    def make_data(self, seed):
        import torch

        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 5, (64, self.length), generator=g)
        return TaskData(x[:48], x[:48].clone(), x[48:], x[48:].clone())

    def evaluate(self, net, data, curve):
        logits, _ = net(data.test_inputs, None)
        same = (logits.argmax(-1) == data.test_targets).all(dim=1)
        return {"exact": float(same.float().mean())}

    def optimum(self, data):
        return {"task_exact": 1.0}

    def baselines(self, data):
        return [Baseline("never", "never copies a whole sequence", {"task_exact": 0.0})]


@dataclass
class Short(Fraction):
    name = "short"
    description = "copy the input tokens, but the held-out targets are one step short"
    primary_metric = "test_accuracy"

    def make_data(self, seed):
        data = super().make_data(seed)
        data.test_targets = data.test_targets[:, :-1]
        return data


@hookimpl
def register_tasks(register):
    register(Fraction())
    register(Short())
"""

MODELS = """
from harness import Model, hookimpl

HARNESS_API = 1


def build(shape, hidden_size, num_layers):
    import torch

    class Wide(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(shape.input_size, hidden_size)
            self.gru = torch.nn.GRU(hidden_size, hidden_size, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, shape.output_size + 1)  # one too many

        def forward(self, inputs, state=None):
            hidden, state = self.gru(self.embed(inputs), state)
            return self.head(hidden), state

    return Wide()


@hookimpl
def register_models(register):
    register(Model("wide", "a GRU whose head has one output too many", build, {"tokens"}))
"""

PACKAGE = "harness-clash 0.2.0"


@pytest.fixture(scope="module")
def clash_env(tmp_path_factory):
    root = make_distribution(
        tmp_path_factory.mktemp("dist"),
        "harness-clash",
        "0.2.0",
        {"harness_clash_tasks": TASKS, "harness_clash_models": MODELS},
        {"clash-tasks": "harness_clash_tasks", "clash-models": "harness_clash_models"},
    )
    return env_with(root)


@pytest.fixture(scope="module")
def clash_run(tmp_path_factory, clash_env):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("clash") / "run"
    grid = ["-t", "hello", "-t", "fraction", "-t", "short", "-m", "gru", "-m", "wide"]
    result = run_cli(
        "run", *grid, "--epochs", "2", "--workers", "1", "--out", str(out), env=clash_env
    )
    return out, result


@pytest.mark.slow
def test_bad_cells_fail_alone_with_the_plugin_at_fault(clash_run):
    out, result = clash_run
    assert result.returncode == 1, result.stderr  # failed cells, but a finished run
    assert "Traceback" not in result.stderr + result.stdout
    cells = pd.read_csv(out / "cells.csv").set_index(["task", "model"])
    assert cells.loc[("hello", "gru"), "status"] == "ok"
    assert cells.loc[("fraction", "gru"), "status"] == "ok"
    for task in ("hello", "fraction"):
        error = cells.loc[(task, "wide"), "error"]
        assert error.startswith("broken contract: model 'wide': outputs must be"), error
        assert error.endswith(f"[model plugin clash-models ({PACKAGE})]"), error
    for model in ("gru", "wide"):  # the data is checked first: the task is at fault
        error = cells.loc[("short", model), "error"]
        assert "test_targets (16, 5) must have one target per input step" in error, error
        assert error.endswith(f"[task plugin clash-tasks ({PACKAGE})]"), error


@pytest.mark.slow
def test_colliding_metric_names_keep_every_table_and_the_report(clash_run, cli, clash_env):
    out, _ = clash_run
    for name in ("cells.parquet", "curves.parquet", "leaderboard.md", "leaderboard.csv"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "fraction_metrics.png").is_file()
    cells = pd.read_parquet(out / "cells.parquet").set_index(["task", "model"])
    assert "task_exact" not in cells  # two kinds: a typed column per task (docs/plugins.md)
    assert cells.loc[("hello", "gru"), "task_exact__hello"] in (True, False)
    assert 0 <= cells.loc[("fraction", "gru"), "task_exact__fraction"] <= 1
    board = pd.read_csv(out / "leaderboard.csv").set_index(["task", "model"])
    gap = board.loc[("fraction", "gru"), "gap_to_best_task_exact"]
    assert gap == pytest.approx(1 - float(board.loc[("fraction", "gru"), "task_exact"]))
    text = (out / "leaderboard.md").read_text()
    assert "- `(never)`: never copies a whole sequence" in text
    assert "- `exact` (higher is better): fraction of held-out sequences" in text
    info = json.loads((out / "run.json").read_text())
    assert info["tasks"]["fraction"]["plugin"] == PACKAGE
    assert info["tasks"]["fraction"]["scored_steps"] is None
    (out / "leaderboard.md").unlink()
    report = cli("report", str(out), env=clash_env)
    assert report.returncode == 0, report.stderr
    rebuilt = (out / "leaderboard.md").read_text()
    assert sorted(rebuilt.splitlines()) == sorted(text.splitlines())  # rows may come reordered
