"""`harness tune`: trials never look at the test split, a killed tune resumes to exactly its
budget, the final cells train on seeds no trial used, and bad input is one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.plugin_api.task import Choice, LogUniform, Recipe
from tests.conftest import HARNESS

optuna = pytest.importorskip("optuna")

TRIALS = 5
TUNE = [
    "tune", "-t", "hello", "-m", "rnn", "-m", "gru", "--trials", str(TRIALS), "--seeds", "2",
    "--epochs", "3", "--workers", "1", "--threads", "1",
]  # fmt: skip
PAIRS = [("hello", "rnn"), ("hello", "gru")]
SEARCHED = ["lr", "hidden_size", "weight_decay"]
OBJECTIVE = "val_accuracy"  # hello's primary metric, on the validation split


def start(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*HARNESS, *TUNE, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trial_files(out: Path) -> list[Path]:
    folder = out / "tune" / "cells"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def studies(out: Path) -> dict[str, list]:
    storage = f"sqlite:///{out / 'tune' / 'study.db'}"
    return {
        summary.study_name: optuna.load_study(study_name=summary.study_name, storage=storage).trials
        for summary in optuna.get_all_study_summaries(storage)
    }


def trial_table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "trials.csv").set_index("cell_id").sort_index()


@pytest.fixture(scope="module")
def clean_tune(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "run"
    proc = start(out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return out, stdout


def test_trial_records_hold_no_test_metric(clean_tune):
    out, _ = clean_tune
    records = [json.loads(p.read_text()) for p in trial_files(out)]
    assert len(records) == TRIALS * len(PAIRS)
    for record in records:
        assert record["status"] == "ok"
        assert record["test_evaluations"] == 0
        tested = [k for k, v in record.items() if k.startswith("test_") and v is not None]
        assert tested == ["test_evaluations"], record["cell_id"]
        assert not [k for k in record if k.startswith("task_")]  # own metrics score the test split
        assert record[OBJECTIVE] is not None
    trials = trial_table(out)
    assert not [
        c
        for c in trials.columns
        if c.startswith("test_") and trials[c].notna().any() and c != "test_evaluations"
    ]


def test_final_cells_use_fresh_seeds_and_the_best_trial(clean_tune):
    out, stdout = clean_tune
    trials = trial_table(out)
    finals = pd.read_csv(out / "cells.csv")
    assert sorted(finals["seed"].unique()) == [0, 1]
    assert not set(trials["seed"]) & set(finals["seed"])
    info = json.loads((out / "run.json").read_text())
    for task, model in PAIRS:
        pair = info["tune"]["pairs"][f"{task}__{model}"]
        assert pair["trials"] == TRIALS
        assert pair["test_evaluations"] == 2  # one per final seed, none in the trials
        mine = trials[trials["model"] == model]
        best = mine[OBJECTIVE].max()
        assert pair["best_validation"] == pytest.approx(best)
        chosen = finals[finals["model"] == model].iloc[0]
        for name in SEARCHED:
            assert chosen[name] == pytest.approx(pair["params"][name])
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["recipe"].str.startswith(f"tuned: {TRIALS} trials").all()
    assert "tuned" in stdout


def test_run_json_records_the_recipe_the_cells_train_with(clean_tune):
    out, _ = clean_tune
    recipe = json.loads((out / "run.json").read_text())["tasks"]["hello"]["recipe"]
    assert recipe["epochs"] == 3  # --epochs 3, not the task's default 30


def test_first_trial_is_the_task_default(clean_tune):
    out, _ = clean_tune
    first = trial_table(out).loc["hello__rnn__trial0"]
    recipe = Recipe(epochs=30, batch_size=1, lr=0.05, hidden_size=16)  # hello's own
    assert (first["lr"], first["hidden_size"], first["weight_decay"]) == (
        recipe.lr,
        recipe.hidden_size,
        0.0,
    )


def test_killed_tune_resumes_to_exactly_its_budget(tmp_path, clean_tune):
    out = tmp_path / "run"
    proc = start(out)
    deadline = time.monotonic() + 300
    while len(trial_files(out)) < 3:
        assert proc.poll() is None, "the tune ended before it could be killed"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in trial_files(out)}
    assert 3 <= len(before) < TRIALS * len(PAIRS)

    again = start(out)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    for name, trials in studies(out).items():
        assert len(trials) == TRIALS, name
        assert [t.number for t in trials] == list(range(TRIALS))
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    after = trial_files(out)
    assert len(after) == TRIALS * len(PAIRS)
    for path in after:  # trials finished before the kill were reused, not run again
        if path.name in before:
            assert path.read_bytes() == before[path.name]
    # trials finished before the kill match an uninterrupted run's; later suggestions can differ
    # when the kill fell inside a batch of parallel trials (TPE then sees another history)
    finished = sorted(Path(name).stem for name in before)
    clean = trial_table(clean_tune[0])[SEARCHED + [OBJECTIVE]]
    resumed = trial_table(out)[SEARCHED + [OBJECTIVE]]
    assert set(finished) <= set(resumed.index)
    pd.testing.assert_frame_equal(resumed.loc[finished], clean.loc[finished])
    assert len(pd.read_csv(out / "cells.csv")) == 2 * len(PAIRS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "trials must be a positive integer"),
        (["-t", "nope"], "unknown task 'nope'"),
        (["-m", "gruu"], "did you mean 'gru'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    result = cli("tune", *args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_without_optuna_says_how_to_install(monkeypatch, tmp_path):
    from harness.cli import main

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    result = CliRunner().invoke(main, ["tune", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "pip install 'harness[tune]'" in result.output
    assert not (tmp_path / "run").exists()


def test_default_search_space_surrounds_the_recipe():
    space = Recipe(epochs=1, batch_size=1, lr=0.01, hidden_size=64).search_space()
    assert space["lr"] == LogUniform(0.001, 0.1)
    assert space["hidden_size"] == Choice(32, 64, 128)
    assert 0.0 in space["weight_decay"].values and len(space["weight_decay"].values) == 2


def test_a_recipe_refuses_a_search_over_what_is_not_a_field():
    with pytest.raises(ValueError, match="'dropout' is not a recipe field"):
        Recipe(epochs=1, batch_size=1, lr=0.01, search={"dropout": Choice(0.0, 0.1)})
    declared = Recipe(epochs=1, batch_size=1, lr=0.01, search={"epochs": Choice(10, 20)})
    assert declared.search_space() == {"epochs": Choice(10, 20)}


def test_leaderboard_says_where_each_recipe_came_from():
    from harness.report import TaskMeta
    from harness.report.ranking import recipe_origin

    cells = pd.DataFrame([{"lr": 0.005, "hidden_size": 128, "weight_decay": 0.0}])
    default = {"lr": 0.005, "hidden_size": 128, "weight_decay": 0.0}
    meta = TaskMeta(primary_metric="test_accuracy", higher_is_better=True, recipe=default)
    assert recipe_origin(meta, "rnn", cells) == ("task default", "lr 0.005, hidden 128, wd 0")
    overridden = TaskMeta("test_accuracy", True, recipe={**default, "lr": 0.01})
    assert recipe_origin(overridden, "rnn", cells)[0] == "task default with overrides"
    tuned = TaskMeta(
        "test_accuracy",
        True,
        recipe=default,
        recipes={"rnn": {"trials": 8, "device_seconds": 41.6, "params": {"lr": 0.0031}}},
    )
    assert recipe_origin(tuned, "rnn", cells) == ("tuned: 8 trials, 42 device-s", "lr 0.0031")
    assert recipe_origin(tuned, "gru", cells)[0] == "task default"


def test_python_api_gives_an_empty_table_when_every_trial_failed(tmp_path):
    import dataclasses

    from harness.api import tune
    from harness.plugin_api.manager import load_plugins
    from harness.plugin_api.model import Model

    def build(shape, hidden, layers):
        raise RuntimeError("this model never builds")

    registry = load_plugins()
    broken = Model("never", "raises in build", build)
    registry = dataclasses.replace(registry, models={**registry.models, "never": broken})
    cells = tune(
        registry=registry,
        tasks=["hello"],
        models=["never"],
        trials=1,
        epochs=1,
        executor="local",
        timing=False,
        out=str(tmp_path / "run"),
    )
    assert cells.empty
