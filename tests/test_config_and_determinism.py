"""Settings from [tool.harness] or --config, overridden by flags and recorded in run.json;
the same seed gives identical metrics on the CPU."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import harness
from harness.errors import HarnessError
from harness.settings.config import load_config

METRICS = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "task_predicted"]


def test_pyproject_settings_flags_override_and_run_json(cli, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.harness]\ntasks = ["hello"]\nmodels = ["rnn", "gru"]\nepochs = 2\nseeds = 2\n'
        'workers = 1\n[tool.harness.options.hello]\ntarget = "ohlol"\n'
    )
    result = cli("run", "--epochs", "3", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["config"]["epochs"] == 3  # the flag wins
    assert info["config"]["models"] == ["rnn", "gru"] and info["resolved"]["seeds"] == [0, 1]
    cells = pd.read_csv(tmp_path / "run" / "cells.csv")
    assert len(cells) == 4 and set(cells["epochs"]) == {3}


def test_config_file_flag(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('tasks = "hello"\nseeds = 3\ndevice = "cpu"\n')
    config = load_config(path, {"seeds": None, "workers": 2})
    assert config.tasks == ["hello"] and config.seeds == 3 and config.workers == 2
    assert config.seed_list == [0, 1, 2]


def test_grid_settings_are_what_run_grid_takes(tmp_path):
    import inspect

    from harness.grid.runner import run_grid

    path = tmp_path / "grid.toml"
    path.write_text('executor = "local"\nthreads = 3\nsave_models = true\n')
    settings = load_config(path, {"workers": 2}).grid_settings()
    assert set(settings) <= set(inspect.signature(run_grid).parameters)
    assert settings["executor"] == "local" and settings["threads"] == 3
    assert settings["workers"] == 2 and settings["save_models"] is True


def test_config_type_errors_are_one_line(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('seeds = "three"\n')
    with pytest.raises(HarnessError, match="setting 'seeds' must be an integer"):
        load_config(path, {})


def test_same_seed_gives_identical_metrics(tmp_path):
    settings = dict(tasks=["hello", "sine"], models=["scratch-rnn", "lstm"], epochs=3, workers=1)
    first = harness.run(**settings, out=str(tmp_path / "a"), options={"sine": {"train_curves": 8}})
    second = harness.run(**settings, out=str(tmp_path / "b"), options={"sine": {"train_curves": 8}})
    other = harness.run(
        **settings, seed=1, out=str(tmp_path / "c"), options={"sine": {"train_curves": 8}}
    )
    columns = [c for c in METRICS if c in first]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert not first["test_loss"].equals(other["test_loss"])
