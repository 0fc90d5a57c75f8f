"""The `harness` command end to end, as a user runs it, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from harness.report.tables import CORE_COLUMNS, CURVE_COLUMNS

SMALL = [
    "-t", "hello", "-t", "consecutive", "-t", "sine",
    "-m", "rnn", "-m", "gru", "-m", "embedding-rnn",
    "--epochs", "2",
    "-o", "consecutive.length=200", "-o", "consecutive.test_length=200",
    "-o", "consecutive.val_length=200",
    "-o", "sine.train_curves=8", "-o", "sine.test_curves=8", "-o", "sine.val_curves=8",
]  # fmt: skip
METRICS = ["train_loss", "test_loss", "test_perplexity", "train_accuracy", "test_accuracy"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("run") / "grid"
    result = run_cli("run", *SMALL, "--out", str(out), "--save-models")
    return out, result


def test_small_grid_exits_zero_and_prints_leaderboard(small_run):
    out, result = small_run
    assert result.returncode == 0, result.stderr
    assert "consecutive: ranked by test_perplexity" in result.stdout
    assert "sine × embedding-rnn (seed 0): not-applicable" in result.stdout
    assert "(best achievable)" in result.stdout


def test_small_grid_writes_every_output(small_run):
    out, _ = small_run
    for name in ["cells.csv", "cells.parquet", "curves.csv", "curves.parquet", "leaderboard.md",
                 "leaderboard.csv", "run.json"]:  # fmt: skip
        assert (out / name).is_file(), name
    plots = {p.name for p in (out / "plots").glob("*.png")}
    for task in ("hello", "consecutive", "sine"):
        assert {f"{task}_loss_curves.png", f"{task}_metrics.png"} <= plots
    assert "sine_predictions.png" in plots
    assert len(list((out / "models").glob("*.pt"))) == 8


def test_cells_table_columns_and_rows(small_run):
    out, _ = small_run
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert len(cells) == 9 and cells["cell_id"].is_unique
    na = cells[cells["status"] == "not-applicable"]
    assert list(zip(na["task"], na["model"])) == [("sine", "embedding-rnn")]
    ok = cells[cells["status"] == "ok"]
    assert (
        len(ok) == 8
        and ok[["train_loss", "test_loss", "params", "train_throughput"]].notna().all().all()
    )
    assert ok[["val_loss", "val_accuracy", "best_epoch"]].notna().all().all()
    assert (ok["test_evaluations"] == 1).all() and (ok["select"] == "best").all()
    assert ok["best_epoch"].between(1, 2).all() and (ok["epochs_run"] == 2).all()
    assert ok[ok["task"] == "sine"]["test_perplexity"].isna().all()  # never a made-up number
    assert ok[ok["task"] != "sine"]["test_perplexity"].notna().all()
    assert {
        "task_probe",
        "task_probe_ok",
        "task_exact",
        "task_first_exact_epoch",
        "task_rollout_mse",
    } <= set(cells.columns)
    parquet = pd.read_parquet(out / "cells.parquet")
    assert list(parquet.columns) == list(cells.columns) and len(parquet) == len(cells)


def test_curves_table(small_run):
    out, _ = small_run
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(curves) == 8 * 2  # eight finished cells, two epochs each
    assert curves.groupby("cell_id")["epoch"].apply(list).map(lambda e: e == [1, 2]).all()


def test_run_json_records_config_seeds_versions_device(small_run):
    out, _ = small_run
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["resolved"]["seeds"] == [0] and info["config"]["epochs"] == 2
    assert info["config"]["options"]["consecutive"]["length"] == "200"
    env = info["environment"]
    assert env["torch"] and env["python"] and env["device"] == "cpu" and env["device_name"]
    assert set(info["tasks"]) == {"hello", "consecutive", "sine"}
    assert info["tasks"]["consecutive"]["optimum"]["test_accuracy"] > 0.85
    assert "own seed stream" in info["tasks"]["consecutive"]["validation"]
    assert "one sequence" in info["tasks"]["hello"]["validation"]


def test_python_api_returns_the_same_table(small_run, tmp_path):
    import harness

    out, _ = small_run
    frame = harness.run(tasks=["hello"], models=["rnn", "gru"], epochs=2, out=str(tmp_path / "api"))
    assert isinstance(frame, pd.DataFrame)
    cli = pd.read_csv(out / "cells.csv")
    cli = cli[(cli["task"] == "hello") & cli["model"].isin(["rnn", "gru"])]
    cli = cli.set_index("cell_id").sort_index()
    api = frame.set_index("cell_id").sort_index()
    pd.testing.assert_frame_equal(api[METRICS], cli[METRICS], check_exact=False, rtol=1e-6)


def test_predict_continues_a_prefix(small_run, cli):
    out, _ = small_run
    result = cli(
        "predict", str(out), "-t", "consecutive", "-m", "rnn", "--prefix", "2 3 4", "--steps", "5"
    )
    assert result.returncode == 0, result.stderr
    tokens = result.stdout.split()
    assert tokens[:3] == ["2", "3", "4"] and len(tokens) == 8
    result = cli("predict", str(out), "-t", "hello", "-m", "gru", "--prefix", "hel", "--steps", "2")
    assert result.returncode == 0 and len(result.stdout.strip()) == 5


def test_predict_without_saved_model_is_one_line_error(small_run, cli, tmp_path):
    import harness

    harness.run(tasks=["hello"], models=["rnn"], epochs=1, out=str(tmp_path / "nosave"))
    result = cli("predict", str(tmp_path / "nosave"), "-t", "hello", "-m", "rnn", "--prefix", "he")
    assert result.returncode == 2 and "--save-models" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "helo"], "unknown task 'helo'; did you mean 'hello'?"),
        (["-m", "lstmm"], "unknown model 'lstmm'; did you mean 'lstm'?"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "cuda:7"], "CUDA"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--epochs", "-3"], "epochs must be a positive integer"),
        (["--seeds", "0"], "seeds must be a positive integer"),
        (["--workers", "0"], "workers must be a positive integer"),
        (["--seed", "-1"], "seed must be a non-negative integer"),
        (["--lr", "-0.1"], "lr must be a positive finite number"),
        (["-o", "hello.nope=1"], "task 'hello' has no option 'nope'"),
        (["-o", "helloworld"], "--option takes NAME.FIELD=VALUE"),
        (["-o", "consecutive.window=abc"], "option 'window' takes an int, not 'abc'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    result = cli("run", "-t", "hello", "-m", "rnn", "--out", str(tmp_path / "o"), *args)
    if "cuda" in args and message == "CUDA":  # pragma: no cover - only on a machine with GPUs
        pytest.importorskip("torch")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_output_folder_that_cannot_be_written(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli("run", "-t", "hello", "-m", "rnn", "--out", str(blocker / "run"))
    assert result.returncode == 2 and "cannot write to output folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_and_unknown_config(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    result = cli("run", "--config", str(bad))
    assert result.returncode == 2 and "malformed config file" in result.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("epocs = 3\n")
    result = cli("run", "--config", str(unknown))
    assert result.returncode == 2 and "unknown setting(s) epocs" in result.stderr
    missing = cli("run", "--config", str(tmp_path / "missing.toml"))
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr


def test_help_and_list_do_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from harness.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(main, ['list']); assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_list_shows_tasks_models_input_kinds_and_packages(cli):
    result = cli("list")
    assert result.returncode == 0
    for name in (
        "consecutive",
        "hello",
        "sine",
        "scratch-rnn",
        "rnn",
        "rnncell",
        "embedding-rnn",
        "lstm",
        "gru",
    ):
        assert name in result.stdout
    assert "harness 0.1.0" in result.stdout
    assert "tokens (20)" in result.stdout and "values (1)" in result.stdout


def test_device_default_is_auto_in_help_config_and_readme():
    from pathlib import Path

    from click.testing import CliRunner

    from harness.cli import main
    from harness.settings.config import RunConfig

    help_text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert "(default: auto" in help_text
    assert RunConfig().device == "auto"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert 'device = "auto"' in readme and "default: cpu" not in readme
