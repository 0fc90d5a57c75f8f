"""Wrong types, wrong values and out-of-range numbers, from the command line or a config file:
one line on stderr and exit status 2, never a traceback or click's usage block."""

from __future__ import annotations

import pytest

from tests.conftest import assert_one_line, invoke

TOML = {
    "device = 3": "setting 'device' must be a string, not 3",
    "tasks = [1, 2]": "setting 'tasks' must be a list of strings, not [1, 2]",
    "options = 5": "setting 'options' must be a table of tables",
    "options = {hello = 3}": "setting 'options' must be a table of tables",
    "out = 5": "setting 'out' must be a string, not 5",
    "epochs = true": "setting 'epochs' must be an integer, not true",
    "lr = 'fast'": "setting 'lr' must be a number, not \"fast\"",
    "seeds = 1.5": "setting 'seeds' must be an integer, not 1.5",
    "resume = 'yes'": "setting 'resume' must be true or false",
    "lr = inf": "lr must be a positive finite number",
    "lr = nan": "lr must be a positive finite number",
    "seed = 1180591620717411303424": "seeds must lie in 0..4294967295",
}


@pytest.mark.parametrize(("line", "message"), TOML.items(), ids=TOML.keys())
def test_wrong_toml_type_or_value_is_one_line(tmp_path, line, message):
    config = tmp_path / "settings.toml"
    config.write_text(line + "\n")
    assert_one_line(invoke("run", "--config", str(config)), message)


def test_pyproject_tool_harness_is_checked_the_same_way(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\ndevice = 3\n")
    monkeypatch.chdir(tmp_path)
    assert_one_line(invoke("run"), "setting 'device' must be a string, not 3")


FLAGS = {
    "epochs abc": (["--epochs", "abc"], "Invalid value for '--epochs': 'abc' is not a valid"),
    "no such option": (["--epoch", "3"], "No such option '--epoch'"),
    "lr inf": (["--lr", "inf"], "lr must be a positive finite number"),
    "lr nan": (["--lr", "nan"], "lr must be a positive finite number"),
    "seeds 1e8": (["--seeds", "100000000"], "seeds must be at most 10,000"),
    "seed 2**70": (["--seed", str(2**70)], "seeds must lie in 0..4294967295"),
    "last seed too big": (["--seed", str(2**32 - 1), "--seeds", "2"], "not up to 4294967296"),
    "gpus-per-cell nan": (
        ["--executor", "ray", "--gpus-per-cell", "nan"],
        "gpus_per_cell must be a number >= 0, not nan",
    ),
}


@pytest.mark.parametrize(("args", "message"), FLAGS.values(), ids=FLAGS.keys())
def test_bad_flag_is_one_line(tmp_path, args, message):
    small = ("-t", "hello", "-m", "rnn", "--epochs", "1", "--out", str(tmp_path / "o"))
    assert_one_line(invoke("run", *small, *args), message)


TASK_OPTIONS = {
    "consecutive.window=0": "window must be at least 1, not 0",
    "consecutive.length=20": "length must be longer than the window (20), not 20",
    "consecutive.probe=2 x": "probe must be numbers 0..19 separated by spaces, not '2 x'",
    "consecutive.probe=25": "probe must be numbers 0..19",
    "sine.points=1": "points must be at least 2, not 1",
    "sine.warmup=50": "warmup must lie in 1..49, not 50",
    "sine.train_curves=0": "train_curves must be at least 1, not 0",
    "sine.train_phases=oops": "train_phases must be 'continuous' or 'tutorial', not 'oops'",
}


@pytest.mark.parametrize(("option", "message"), TASK_OPTIONS.items(), ids=TASK_OPTIONS.keys())
def test_a_task_option_no_dataset_can_have_is_one_line(tmp_path, option, message):
    task = option.split(".")[0]
    args = ("-t", task, "-m", "rnn", "--epochs", "1", "--out", str(tmp_path / "o"))
    assert_one_line(invoke("run", *args, "-o", option), message)
    assert not (tmp_path / "o").exists()  # refused before anything started


def test_config_that_is_a_folder_and_out_that_is_a_file(tmp_path):
    assert_one_line(invoke("run", "--config", str(tmp_path)), "is a directory")
    afile = tmp_path / "file"
    afile.write_text("")
    assert_one_line(invoke("run", "--out", str(afile)), "is a file")


def test_unknown_command_and_missing_argument_are_one_line():
    assert_one_line(invoke("rnu"), "No such command 'rnu'")
    assert_one_line(invoke("report"), "Missing argument 'RUN_DIR'")


def test_help_still_shows_and_a_bare_harness_prints_usage():
    assert invoke("run", "--help").exit_code == 0
    bare = invoke()
    assert "Usage:" in bare.output and "Commands:" in bare.output


@pytest.mark.slow
def test_more_workers_than_cells_or_cores_is_capped_with_a_notice(cli, tmp_path):
    result = cli(
        "run", "-t", "hello", "-m", "rnn", "--epochs", "1", "--workers", "1000",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--workers 1000: using 1 (1 cell(s) to run" in result.stdout


def test_resume_of_a_folder_that_holds_no_run_is_one_line(tmp_path):
    missing = tmp_path / "typo"
    result = invoke("run", "-t", "hello", "-m", "rnn", "--out", str(missing), "--resume")
    assert_one_line(result, f"--resume: {missing} holds no run to resume")
    assert not missing.exists()  # nothing started there


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_bytes(b"tasks = ['h\xe9llo']\n")
    assert_one_line(invoke("run", "--config", str(config)), "is not UTF-8 text")


def test_a_wrong_type_in_the_file_is_refused_even_when_a_flag_overrides_it(tmp_path):
    config = tmp_path / "harness.toml"
    config.write_text("tasks = [1, 2]\n")
    result = invoke("run", "--config", str(config), "-t", "hello", "--out", str(tmp_path / "o"))
    assert_one_line(result, "setting 'tasks' must be a list of strings")
