"""`harness predict` on damaged or tampered run folders: one line and exit 2, never a
traceback, and the pickle payload of a tampered weights file never runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from tests.conftest import assert_one_line


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    import harness

    out = tmp_path_factory.mktemp("saved") / "run"
    harness.run(
        tasks=["hello"], models=["rnn", "gru"], epochs=1, workers=1, save_models=True, out=str(out)
    )
    return out


@pytest.fixture
def run_copy(saved_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(saved_run, out)
    return out


def predict(out: Path, *args: str):
    args = args or ("-t", "hello", "-m", "rnn")
    return CliRunner().invoke(main, ["predict", str(out), *args, "--prefix", "he"])


def test_an_intact_run_predicts(run_copy):
    result = predict(run_copy)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("he")


WEIGHTS = "models/hello__rnn__seed0.pt"
CELL = "cells/hello__rnn__seed0.json"


def _truncate(out: Path) -> None:
    path = out / WEIGHTS
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_cell(**changes):
    def edit(out: Path) -> None:
        record = json.loads((out / CELL).read_text())
        record.update(changes)
        (out / CELL).write_text(json.dumps(record))

    return edit


DAMAGE = {
    "truncated weights": (_truncate, "cannot load saved model"),
    "garbage weights": (
        lambda out: (out / WEIGHTS).write_bytes(b"\x00garbage" * 50),
        "cannot load saved model",
    ),
    "empty weights": (lambda out: (out / WEIGHTS).write_bytes(b""), "cannot load saved model"),
    "another cell's weights": (
        lambda out: shutil.copy(out / "models/hello__gru__seed0.pt", out / WEIGHTS),
        "was saved under other settings",
    ),
    "weights missing": (lambda out: (out / WEIGHTS).unlink(), "is missing"),
    "model_file outside the run": (_edit_cell(model_file="../../outside.pt"), "points outside"),
    "model_file absolute": (_edit_cell(model_file="/etc/passwd"), "points outside"),
    "model_file not a string": (_edit_cell(model_file=5), "points outside"),
    "garbage cell file": (lambda out: (out / CELL).write_text("{trunc"), "cannot read"),
    "cell file not an object": (lambda out: (out / CELL).write_text("[1, 2]"), "not a JSON object"),
    "garbage run.json": (lambda out: (out / "run.json").write_text("nope"), "cannot read"),
    "run.json without the task": (
        lambda out: (out / "run.json").write_text('{"config": {"options": {}}, "tasks": {}}'),
        "is not part of the run",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_run_folder_is_one_line_and_exit_2(run_copy, damage):
    change, message = damage
    change(run_copy)
    assert_one_line(predict(run_copy), message)


def test_weights_of_the_right_config_that_do_not_fit_the_model(run_copy):
    import torch

    saved = torch.load(run_copy / WEIGHTS, weights_only=True)
    saved["state_dict"] = {"unexpected.weight": torch.zeros(2)}
    torch.save(saved, run_copy / WEIGHTS)
    assert_one_line(predict(run_copy), "does not fit model 'rnn' on task 'hello'")


class Payload:
    """Unpickling this runs code: what a tampered weights file would try."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


def test_a_pickle_payload_never_runs(run_copy, tmp_path):
    import torch

    marker = tmp_path / "pwned"
    torch.save({"config": "x", "state_dict": Payload(marker)}, run_copy / WEIGHTS)
    assert_one_line(predict(run_copy), "cannot load saved model")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\x00b"])
def test_a_name_that_would_leave_the_run_folder_is_refused(run_copy, name):
    assert_one_line(predict(run_copy, "-t", name, "-m", "rnn"), "invalid task name")
    assert_one_line(predict(run_copy, "-t", "hello", "-m", name), "invalid model name")
