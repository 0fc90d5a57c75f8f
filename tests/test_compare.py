"""`harness compare A B`: changes flagged only where intervals and a threshold agree; cells
added, removed or broken; markdown; exit status for CI; one-line errors for bad folders."""

from __future__ import annotations

import itertools

import pytest

from harness.api import compare
from harness.report import TaskMeta
from harness.storage.run_folder import RunFolder

META = TaskMeta(primary_metric="test_accuracy", higher_is_better=True, input_kind="tokens")


def make_run(
    path, accuracy, speed=1000.0, status=None, models=("rnn", "gru"), quartiles=None, error=""
):
    """A run folder with one task ``t``: per model, one cell per accuracy value (its seeds)."""
    folder = RunFolder.create(path)
    folder.write_info(
        {"config": {"epochs": len(str(path)), "note": error}, "resolved": {"models": list(models)},
         "tasks": {"t": META.to_dict()}, "status": "finished"}
    )  # fmt: skip
    for model in models:
        for seed, value in enumerate(accuracy[model]):
            record = {
                "cell_id": f"t__{model}__seed{seed}",
                "task": "t",
                "model": model,
                "seed": seed,
                "status": (status or {}).get((model, seed), "ok"),
                "error": error,
                "test_accuracy": value,
                "train_throughput": speed,
            }
            if quartiles:
                record["train_throughput_q1"], record["train_throughput_q3"] = quartiles
            folder.write_record(record)
    return path


def test_a_clear_drop_is_a_regression_and_noise_is_not(tmp_path):
    a = make_run(tmp_path / "a", {"rnn": [0.90, 0.91, 0.92], "gru": [0.80, 0.85, 0.90]})
    b = make_run(tmp_path / "b", {"rnn": [0.50, 0.52, 0.51], "gru": [0.81, 0.86, 0.88]})
    result = compare(a, b)
    verdicts = dict(zip(result.models["model"], result.models["verdict"]))
    assert verdicts == {"rnn": "worse", "gru": "same"}
    assert len(result.regressions) == 1 and "t × rnn" in result.regressions[0]
    assert compare(b, a).regressions == []  # the other way round it is an improvement
    assert dict(zip(compare(b, a).models["model"], compare(b, a).models["verdict"]))["rnn"] == (
        "better"
    )


def test_a_significant_change_below_the_threshold_is_not_flagged(tmp_path):
    a = make_run(tmp_path / "a", {"rnn": [0.900, 0.9001], "gru": [0.5, 0.5]})
    b = make_run(tmp_path / "b", {"rnn": [0.899, 0.8991], "gru": [0.5, 0.5]})
    assert compare(a, b, threshold=0.01).regressions == []
    assert len(compare(a, b, threshold=0.0001).regressions) == 1


def test_one_seed_has_no_interval_and_flags_nothing(tmp_path):
    a = make_run(tmp_path / "a", {"rnn": [0.9], "gru": [0.9]})
    b = make_run(tmp_path / "b", {"rnn": [0.1], "gru": [0.9]})
    result = compare(a, b)
    assert set(result.models["verdict"]) == {"no interval"}
    assert result.regressions == [] and any("one seed" in n for n in result.notes)


def test_cells_added_removed_and_broken(tmp_path):
    a = make_run(tmp_path / "a", {"rnn": [0.9, 0.9], "gru": [0.9, 0.9]})
    b = make_run(
        tmp_path / "b",
        {"rnn": [0.9, 0.9], "lstm": [0.9]},
        status={("rnn", 1): "failed"},
        models=("rnn", "lstm"),
    )
    result = compare(a, b)
    assert result.added == ["t × lstm seed 0"]
    assert result.removed == ["t × gru seed 0", "t × gru seed 1"]
    assert any("t × rnn seed 1: ok -> failed" in r for r in result.regressions)
    verdicts = dict(zip(result.models["model"], result.models["verdict"]))
    assert verdicts["gru"] == "only in A" and verdicts["lstm"] == "only in B"


def test_markdown_tables_and_lists_survive_plugin_text(tmp_path):
    a = make_run(tmp_path / "a", {"rnn": [0.9], "gru": [0.9]})
    error = "boom | bang\n# not a heading"
    status = {("rnn", 0): "failed"}
    b = make_run(tmp_path / "b", {"rnn": [0.9], "gru": [0.9]}, status=status, error=error)
    lines = compare(a, b).markdown().splitlines()
    assert not any(line.startswith("# not") for line in lines)
    for table in ("setting", "task"):  # the settings table (its `note`) and the cell table
        header = next(line for line in lines if line.startswith(f"| {table} "))
        rows = list(itertools.takewhile(lambda x: x.startswith("|"), lines[lines.index(header) :]))
        assert {row.replace("\\|", "").count("|") for row in rows} == {header.count("|")}, rows
    assert any(line.startswith("- regression: t × rnn seed 0") for line in lines)


def test_speed_from_timing_quartiles(tmp_path):
    a = make_run(tmp_path / "a", {"rnn": [0.9]}, speed=1000, quartiles=(950, 1050), models=["rnn"])
    b = make_run(tmp_path / "b", {"rnn": [0.9]}, speed=500, quartiles=(480, 520), models=["rnn"])
    noisy = make_run(
        tmp_path / "c", {"rnn": [0.9]}, speed=900, quartiles=(600, 1200), models=["rnn"]
    )
    assert any("train speed" in r for r in compare(a, b).regressions)
    assert compare(a, noisy).regressions == []  # quartiles overlap: not flagged
    assert "0.50×" in compare(a, b).cells.iloc[0]["train speed ratio"]


def test_speed_is_judged_once_per_pair_not_per_seed(tmp_path):
    """Seeds share their pair's timing: three copies are not three samples (no Welch interval
    of zero width) and a slower pair is one regression, not one per seed."""
    seeds = {"rnn": [0.9, 0.9, 0.9]}
    a = make_run(tmp_path / "a", seeds, speed=1000, quartiles=(990, 1010), models=["rnn"])
    b = make_run(tmp_path / "b", seeds, speed=800, quartiles=(790, 810), models=["rnn"])
    regressions = [r for r in compare(a, b).regressions if "train speed" in r]
    assert len(regressions) == 1
    same = make_run(tmp_path / "c", seeds, speed=800, quartiles=(700, 1000), models=["rnn"])
    assert compare(a, same).regressions == []  # quartiles overlap: not flagged
    assert compare(a, same).speed.iloc[0]["train speed verdict"] == "same"


def test_cli_markdown_exit_status_and_bad_folders(tmp_path, cli):
    a = make_run(tmp_path / "a", {"rnn": [0.90, 0.91, 0.92], "gru": [0.8, 0.8, 0.8]})
    b = make_run(tmp_path / "b", {"rnn": [0.50, 0.52, 0.51], "gru": [0.8, 0.8, 0.8]})
    done = cli("compare", str(a), str(b), "--markdown", "--fail-on-regression")
    assert done.returncode == 1, done.stderr
    assert "## quality per model" in done.stdout and "| rnn " in done.stdout
    assert "regression: t × rnn" in done.stdout
    done = cli("compare", str(b), str(a), "--fail-on-regression")
    assert done.returncode == 0, done.stderr
    assert "no regression" in done.stdout
    done = cli("compare", str(a), str(tmp_path / "nope"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "not a run folder" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("flag", ["--threshold", "--speed-threshold"])
def test_negative_threshold_is_bad_input(tmp_path, cli, flag):
    a = make_run(tmp_path / "a", {"rnn": [0.9], "gru": [0.9]})
    done = cli("compare", str(a), str(a), flag, "-1")
    assert done.returncode == 2 and "must be" in done.stderr
