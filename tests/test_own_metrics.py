"""A task's own metrics: never break another task's tables, declared directions, honest labels."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

from harness import Recipe, Task, TaskData, TaskShape, hookimpl
from harness.plugin_api.manager import load_plugins
from harness.report import TaskMeta
from harness.report.ranking import aggregate, higher_is_better, markdown
from harness.storage.files import write_frame


def test_a_column_two_tasks_fill_with_different_types_is_written(tmp_path):
    frame = pd.DataFrame(
        {
            "task": ["hello", "floaty", "named"],
            "task_exact": [True, 0.5, None],
            "task_label": ["a", 3, None],
            "task_count": [1, 2.5, None],
        }
    )
    write_frame(frame, tmp_path / "cells")
    back = pd.read_parquet(tmp_path / "cells.parquet")
    assert list(back["task_exact"][:2]) == ["True", "0.5"] and back["task_exact"].isna()[2]
    assert list(back["task_label"][:2]) == ["a", "3"]
    assert back["task_count"].dtype == float  # numbers of both kinds stay numbers
    assert pd.read_csv(tmp_path / "cells.csv")["task_exact"].tolist()[:2] == ["True", "0.5"]


def test_mixed_values_are_written_whatever_the_column_dtype(tmp_path):
    frame = pd.DataFrame(
        {
            "task_exact": pd.Series([True, 0.5, None], dtype="category"),
            "task_label": pd.Series(["a", "b", None], dtype="string"),
            "task_name": pd.Series(["x", None, "z"], dtype="str"),
        }
    )
    write_frame(frame, tmp_path / "cells")
    back = pd.read_parquet(tmp_path / "cells.parquet")
    assert list(back["task_exact"][:2]) == ["True", "0.5"] and back["task_exact"].isna()[2]
    assert list(back["task_label"][:2]) == ["a", "b"] and back["task_label"].isna()[2]
    assert list(back["task_name"][::2]) == ["x", "z"] and back["task_name"].isna()[1]


@dataclass
class Floaty(Task):
    """Its own float ``exact`` collides with hello's boolean ``exact``."""

    name = "floaty"
    description = "copy the input; exact is a fraction here"
    shape = TaskShape("tokens", 4, "classes", 4)
    recipe = Recipe(epochs=1, batch_size=8, lr=0.01, hidden_size=8)
    primary_metric = "task_exact"
    higher_is_better = True
    metric_descriptions = {"exact": "a fraction", "model": "an own metric named like a column"}

    def make_data(self, seed):
        import torch

        x = torch.randint(0, 4, (16, 5), generator=torch.Generator().manual_seed(seed))
        return TaskData(x, x.clone(), x.clone(), x.clone())

    def evaluate(self, net, data, curve):
        return {"exact": 0.5, "model": 7.0}

    def optimum(self, data):
        return {"task_exact": 1.0, "task_model": 9.0}


class FloatyPlugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register(Floaty())


@pytest.mark.slow
def test_colliding_own_metric_names_keep_every_table(tmp_path):
    from harness.api import execute_run
    from harness.settings.config import load_config

    registry = load_plugins(allow=["hello", "gru"], extra=[("floaty", FloatyPlugin())])
    settings = {"out": str(tmp_path), "workers": 1, "epochs": 2, "tasks": ["hello", "floaty"]}
    result = execute_run(load_config(None, settings), registry=registry)
    assert set(result.cells["status"]) == {"ok"}
    for name in ("cells.parquet", "cells.csv", "leaderboard.md", "leaderboard.csv"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "plots" / "floaty_metrics.png").is_file()
    board = pd.read_csv(tmp_path / "leaderboard.csv").set_index("task")
    assert board.loc["floaty", "task_exact"] == "0.5"  # each task's own value, apart
    assert board.loc["hello", "task_exact"] in ("0/1", "1/1")
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| task_model " in text  # an own metric named like a leaderboard column keeps task_
    # no direction declared for `model`: no gap computed, rather than a guessed sign
    assert "gap_to_best_task_model" not in text and "gap_to_best_task_exact" in text


def test_gap_to_best_follows_the_declared_direction():
    cells = pd.DataFrame(
        [
            {"task": "t", "model": "a", "seed": 0, "status": "ok", "test_loss": 1.0,
             "task_exact": 0.25, "task_err": 0.5, "task_other": 3.0},
        ]
    )  # fmt: skip
    meta = {
        "primary_metric": "test_loss",
        "higher_is_better": False,
        "metric_directions": {"exact": "higher", "err": "lower"},
        "optimum": {"task_exact": 1.0, "task_err": 0.0, "task_other": 0.0, "test_loss": 0.0},
    }
    meta = TaskMeta.from_dict(meta)
    board = aggregate(cells, "t", meta)
    assert board.loc[0, "gap_to_best_task_exact"] == pytest.approx(0.75)  # 1 - x, not x - 1
    assert board.loc[0, "gap_to_best_task_err"] == pytest.approx(0.5)
    assert board.loc[0, "gap_to_best_test_loss"] == pytest.approx(1.0)
    assert "gap_to_best_task_other" not in board  # no direction: no gap
    assert higher_is_better("train_accuracy", meta) is True
    assert higher_is_better("test_perplexity", meta) is False
    assert higher_is_better("task_other", meta) is None


def test_leaderboard_says_what_the_loss_covers_and_what_baselines_are():
    cells = pd.DataFrame([{"task": "t", "model": "a", "seed": 0, "status": "ok", "test_loss": 1.0}])
    meta = {
        "primary_metric": "test_loss",
        "higher_is_better": False,
        "scored_steps": 1,
        "metric_descriptions": {"err": "an error"},
        "metric_directions": {"err": "lower"},
        "baselines": [{"name": "zero", "description": "always predict 0", "metrics": {}}],
    }
    text = markdown(cells, {"t": TaskMeta.from_dict(meta)})
    assert "cover only the last step of each sequence (`scored_steps = 1`)" in text
    assert "- `(zero)`: always predict 0" in text
    assert "- `err` (lower is better): an error" in text
    every = markdown(cells, {"t": TaskMeta.from_dict({**meta, "scored_steps": None})})
    assert "cover every step of each sequence" in every


def test_run_json_records_scored_steps_and_directions(registry):
    from harness.session import task_meta

    meta = task_meta(registry, "sine", {"train_curves": 2, "test_curves": 2}, [0])
    assert meta.scored_steps is None
    assert meta.metric_directions["rollout_mse"] == "lower"
    json.dumps(meta.to_dict())


def test_a_plugin_with_a_bad_direction_is_broken():
    @dataclass
    class Bad(Floaty):
        name = "bad-direction"
        metric_directions = {"exact": "up"}

    class Plugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register(Bad())

    registry = load_plugins(allow=[], extra=[("bad", Plugin())])
    assert "bad-direction" not in registry.tasks
    assert "'higher' or 'lower'" in registry.broken[0].error
