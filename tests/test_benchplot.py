"""`harness bench-plot`: a plot per sweep, phase and group of a saved pytest-benchmark JSON;
a file that is not one is a one-line error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness.cli import main


def bench(name: str, median: float, **info) -> dict:
    stats = {"median": median, "q1": median * 0.9, "q3": median * 1.2}
    return {"name": name, "group": info.pop("group", None), "stats": stats, "extra_info": info}


SAVED = {
    "benchmarks": [
        bench("s1", 0.002, kind="sweep", sweep="length", model="rnn", timesteps=10, hidden_size=8),
        bench("s2", 0.004, kind="sweep", sweep="length", model="rnn", timesteps=20, hidden_size=8),
        bench("p1", 0.001, kind="pair", phase="train", task="hello", model="rnn"),
        bench("p2", 0.003, kind="pair", phase="infer", task="hello", model="gru"),
        bench("o1", 0.5, group="overhead"),
        {"name": "untimed", "stats": None},
    ]
}


def test_each_kind_of_benchmark_gets_its_plot(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(SAVED))
    result = CliRunner().invoke(main, ["bench-plot", str(saved), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    names = sorted(line.rsplit("/", 1)[-1] for line in result.output.split())
    expected = ["group-overhead.png", "sweep-length.png", "tasks-infer.png", "tasks-train.png"]
    assert names == expected
    assert all((tmp_path / "p" / name).stat().st_size > 0 for name in names)


BAD = {
    "not json": ("{oops", "is not JSON"),
    "no list": (json.dumps({"benchmarks": 5}), "no 'benchmarks' list"),
    "nothing timed": (json.dumps({"benchmarks": [{"name": "a"}]}), "no timed benchmarks"),
    "no median": (
        json.dumps({"benchmarks": [{"name": "a", "stats": {"mean": 1}}]}),
        "benchmark 'a' has no median time",
    ),
    "sweep without its axis": (
        json.dumps({"benchmarks": [bench("a", 1.0, kind="sweep", sweep="hidden")]}),
        "sweep benchmark 'a' has no numeric 'hidden_size'",
    ),
}


@pytest.mark.parametrize(("text", "message"), BAD.values(), ids=BAD.keys())
def test_a_file_that_is_not_a_saved_run_is_one_line(tmp_path, text, message):
    saved = tmp_path / "run.json"
    saved.write_text(text)
    result = CliRunner().invoke(main, ["bench-plot", str(saved), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_python_m_benchplot_is_the_same_command(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text("{oops")
    done = subprocess.run(
        [sys.executable, "-m", "harness.benchplot", str(saved)], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "not JSON" in done.stderr
