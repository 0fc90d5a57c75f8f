"""Every Recipe field can be overridden for every task, from the command line and the config file,
type-checked, with one-line errors; new Recipe fields need no new code."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.grid.runner import plan_grid
from harness.plugin_api.task import Recipe
from harness.settings.config import load_config
from harness.settings.overrides import recipe_from_text

#: A value for every Recipe field, different from every built-in task's default.
SAMPLE = {
    "epochs": 3,
    "batch_size": 7,
    "lr": 0.003,
    "optimizer": "rmsprop",
    "hidden_size": 9,
    "num_layers": 2,
    "clip": None,
    "weight_decay": 0.01,
    "carry_state": True,
    "schedule": "cosine",
}


def test_the_sample_covers_every_recipe_field():
    # every field but `search`, the space `harness tune` searches, which the task declares
    assert set(SAMPLE) == {f.name for f in dataclasses.fields(Recipe)} - {"search"}


def toml_value(value):
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.mark.parametrize("where", ["top level", "recipe table", "command line"])
def test_every_field_reaches_every_cell(tmp_path, registry, where):
    lines = [f"{k} = {toml_value(v)}" for k, v in SAMPLE.items()]
    if where == "command line":
        text = {k: "none" if v is None else str(v) for k, v in SAMPLE.items()}
        flags = {"recipe": recipe_from_text(text)}
        config = load_config(None, flags, cwd=tmp_path)
    else:
        header = ["[tool.harness]"] if where == "top level" else ["[tool.harness.recipe]"]
        (tmp_path / "pyproject.toml").write_text("\n".join(header + lines) + "\n")
        config = load_config(None, {}, cwd=tmp_path)
    assert config.recipe_overrides() == SAMPLE
    plan = plan_grid(registry, ["hello", "sine"], ["gru"], [0], "cpu", SAMPLE, {})
    resolved = [dataclasses.asdict(c.recipe) for c in plan.cells]
    assert [{k: v for k, v in r.items() if k != "search"} for r in resolved] == [SAMPLE, SAMPLE]


def test_flags_beat_the_file_field_by_field(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("batch_size = 32\nepochs = 5\n[recipe]\nschedule = 'cosine'\n")
    flags = {"recipe": {"batch_size": 8}, "lr": 0.5}
    config = load_config(path, flags)
    assert config.recipe_overrides() == {
        "batch_size": 8, "schedule": "cosine", "epochs": 5, "lr": 0.5,
    }  # fmt: skip
    assert load_config(path, {"recipe": recipe_from_text({"epochs": "2"})}).epochs == 2
    assert load_config(None, {"batch_size": 4}, cwd=tmp_path).recipe == {"batch_size": 4}  # API


@pytest.mark.parametrize(
    ("file_text", "flags", "message"),
    [
        ('batch_size = "32"', {}, r"recipe field batch_size takes an int, not '32'"),
        ("clip = true", {}, r"recipe field clip takes a float \(or 'none'\), not True"),
        ("carry_state = 1", {}, r"recipe field carry_state takes a bool, not 1"),
        ("", {"recipe": {"batch_size": "abc"}}, r"--recipe: recipe field batch_size takes an int"),
        ("", {"recipe": {"lr": "inf"}}, r"lr must be a positive finite number"),
        ("", {"recipe": {"weight_decay": "inf"}}, r"recipe field weight_decay must be finite"),
        ("", {"recipe": {"nosuch": "1"}}, r"unknown recipe field 'nosuch'"),
        ("", {"recipe": {"optimzer": "sgd"}}, r"did you mean 'optimizer'\?"),
        ("", {"recipe": {"optimizer": "lbfgs"}}, r"recipe optimizer must be one of"),
        ("", {"recipe": {"batch_size": "0"}}, r"recipe batch_size must be at least 1"),
        ("", {"recipe": {"clip": "-1"}}, r"recipe clip must be positive or None"),
        ("batch_size = 2\n[recipe]\nbatch_size = 3", {}, r"batch_size set twice"),
        ("recipe = 5", {}, r"recipe must be a table"),
    ],
)
def test_bad_overrides_are_one_line_errors(tmp_path, file_text, flags, message):
    path = tmp_path / "settings.toml"
    path.write_text(file_text + "\n")
    flags = {"recipe": recipe_from_text(flags["recipe"])} if flags else flags
    with pytest.raises(HarnessError, match=message) as info:
        load_config(path, flags)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_command_line_recipe_runs_and_is_recorded(cli, tmp_path):
    out = tmp_path / "run"
    result = cli(
        "run", "-t", "hello", "-m", "rnn", "--epochs", "1", "--workers", "1",
        "--recipe", "optimizer=sgd", "-r", "clip=none", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert cells.loc[0, "optimizer"] == "sgd"
    import json

    recipe = json.loads((out / "run.json").read_text())["tasks"]["hello"]["recipe"]
    assert recipe["optimizer"] == "sgd" and recipe["clip"] is None and recipe["epochs"] == 1
    bad = cli("run", "-t", "hello", "--recipe", "batch_size", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "--recipe takes NAME=VALUE" in bad.stderr
