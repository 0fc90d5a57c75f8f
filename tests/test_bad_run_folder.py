"""A damaged run folder is never fatal: `harness report` skips and names the unreadable cell
files, `harness run` into the folder reruns those cells, a corrupt run.json is one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke

GRID = ["-t", "hello", "-m", "rnn", "-m", "gru", "--epochs", "1", "--workers", "1"]
CELL = "cells/hello__rnn__seed0.json"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    result = invoke("run", *GRID, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit(path: Path, **fields) -> None:
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, **fields}))


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


DAMAGE = {
    "truncated": (_truncate, "not valid JSON"),
    "garbage": (lambda p: p.write_bytes(b"\xff\xfe garbage \x00"), "not valid JSON"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "a list": (lambda p: p.write_text("[1, 2]"), "a JSON list, not an object"),
    "a number": (lambda p: p.write_text("3"), "a JSON int, not an object"),
    "no record": (lambda p: p.write_text("{}"), "not a cell record"),
    "another cell's record": (
        lambda p: shutil.copy(p.with_name("hello__gru__seed0.json"), p),
        "holds the record of 'hello__gru__seed0'",
    ),
    "a folder": (_folder, "a folder, not a file"),
    "a FIFO": (lambda p: (p.unlink(), os.mkfifo(p)), "not a regular file"),  # never blocks
    "an unknown status": (lambda p: _edit(p, status="exploded"), "unknown status 'exploded'"),
    "text for a figure": (lambda p: _edit(p, test_accuracy="high"), "test_accuracy is a str"),
    "a curve that is text": (lambda p: _edit(p, curve="x"), "its curve is not a list"),
    "a dangling link": (
        lambda p: (p.unlink(), p.symlink_to(p.with_name("gone"))),
        "No such file",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_report_skips_and_names_an_unreadable_cell_file(run_copy, damage):
    change, reason = damage
    change(run_copy / CELL)
    result = invoke("report", str(run_copy))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "skipped 1 unreadable cell file(s)" in result.stdout
    assert "hello__rnn__seed0.json" in result.stdout and reason in result.stdout
    assert "gru" in result.stdout  # the readable cell is still ranked
    cells = (run_copy / "cells.csv").read_text()
    assert "hello__gru__seed0" in cells and "hello__rnn__seed0" not in cells


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_report_skips_a_cell_file_without_read_permission(run_copy):
    (run_copy / CELL).chmod(0)
    result = invoke("report", str(run_copy))
    assert result.exit_code == 0 and "Permission denied" in result.stdout


RUN_JSON = {
    "garbage": ("{not json", "is unreadable: not valid JSON"),
    "empty": ("", "is unreadable: empty"),
    "a list": ("[]", "is unreadable: a JSON list, not an object"),
    "tasks not a table": ('{"tasks": 5}', "does not describe the run's tasks"),
    "a task name with a path": (
        '{"tasks": {"../x": {"primary_metric": "test_loss", "higher_is_better": false}}}',
        "invalid task name '../x'",
    ),
}


@pytest.mark.parametrize(("text", "message"), RUN_JSON.values(), ids=RUN_JSON.keys())
def test_corrupt_run_json_is_one_line_and_exit_2(run_copy, text, message):
    (run_copy / "run.json").write_text(text)
    result = invoke("report", str(run_copy))
    assert result.exit_code == 2, (result.output, result.exception)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_truncated_run_json_is_one_line(run_copy):
    _truncate(run_copy / "run.json")
    result = invoke("report", str(run_copy))
    assert result.exit_code == 2 and "is unreadable" in result.stderr


@pytest.mark.parametrize("damage", ["truncated", "a folder", "no record"])
def test_run_into_the_folder_reruns_unreadable_cells(run_copy, damage):
    change, _ = DAMAGE[damage]
    change(run_copy / CELL)
    result = invoke("run", *GRID, "--out", str(run_copy))
    assert result.exit_code == 0, (result.output, result.exception)
    text = " ".join(result.stdout.split())
    assert "1 cell file(s) in" in text and "are unreadable, rerunning them" in text
    assert "made under other settings" not in text
    assert "resuming: 1 of 2 cells already finished" in text
    record = json.loads((run_copy / CELL).read_text())
    assert record["status"] == "ok" and record["cell_id"] == "hello__rnn__seed0"
    if damage == "a folder":  # set aside, not deleted
        assert (run_copy / (CELL + ".unreadable") / "inside").read_text() == "x"


def test_a_run_json_from_a_newer_harness_is_one_line(run_copy):
    info = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**info, "format_version": 99}))
    result = invoke("report", str(run_copy))
    assert result.exit_code == 2 and "format_version 99" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
