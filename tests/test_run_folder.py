"""The run folder owns the layout; the CLI speaks only the public API; task metadata is typed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness
from harness import HarnessError
from harness.report import Reference, TaskMeta
from harness.storage.run_folder import FORMAT_VERSION, RunFolder, UnreadableFile


def test_layout_and_round_trip(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    folder.write_info({"status": "running"})
    assert folder.read_info() == {"format_version": FORMAT_VERSION, "status": "running"}
    record = {"cell_id": "t__m__seed0", "task": "t", "model": "m", "seed": 0, "status": "ok"}
    folder.write_record({**record, "config_hash": "x"})
    assert folder.cell_file("t__m__seed0") == tmp_path / "run" / "cells" / "t__m__seed0.json"
    assert folder.read_record("t__m__seed0")["status"] == "ok"
    assert folder.read_record("missing") is None
    assert [r["cell_id"] for r in folder.read_records()] == ["t__m__seed0"]
    assert folder.model_file("a").relative_to(folder.path).as_posix() == "models/a.pt"
    assert RunFolder.latest(tmp_path).path == folder.path


def test_unreadable_record_is_skipped_and_named(tmp_path):
    folder = RunFolder.create(tmp_path)
    folder.cells_dir.mkdir()
    folder.cell_file("bad").write_text("{not json")
    assert folder.read_records() == []
    records, bad = folder.scan_records()
    assert records == [] and [b.path.name for b in bad] == ["bad.json"]
    with pytest.raises(UnreadableFile, match="not valid JSON"):
        folder.read_record("bad")


def test_open_refuses_a_folder_without_run_json(tmp_path):
    with pytest.raises(HarnessError, match="not a run folder"):
        RunFolder.open(tmp_path)


def test_task_meta_round_trips_and_ignores_unknown_keys():
    meta = TaskMeta(
        primary_metric="test_loss",
        higher_is_better=False,
        optimum={"test_loss": 0.1},
        baselines=[Reference("zero", "predict 0", {"test_loss": 0.5})],
    )
    stored = {**meta.to_dict(), "added_by_a_newer_version": 1}
    assert TaskMeta.from_dict(stored) == meta
    assert meta.references == [("(zero)", {"test_loss": 0.5}), ("(best achievable)", meta.optimum)]


def test_cli_imports_only_the_public_api():
    source = Path(harness.__file__).with_name("cli.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness")
    }
    assert imported <= {"harness", "harness.api"}, imported


def test_unreadable_timing_files_are_skipped(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    folder.write_timing({"pair_id": "hello__rnn", "train_throughput": 1.0})
    folder.timing_dir.joinpath("hello__gru.json").mkdir()  # a folder where a file belongs
    folder.timing_file("hello__lstm").write_text("[1, 2]")  # JSON, but not an object
    folder.timing_file("hello__embedding-rnn").write_text("{trunc")
    assert [t["pair_id"] for t in folder.read_timings()] == ["hello__rnn"]
    for pair in ("hello__gru", "hello__lstm", "hello__embedding-rnn", "hello__none"):
        assert folder.read_timing(pair) is None
