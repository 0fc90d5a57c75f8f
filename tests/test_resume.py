"""Nothing lost: a run killed outright (or interrupted, or losing a pool worker) resumes into
the same folder, runs only the missing cells, and ends with the same tables as a clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import HARNESS

GRID = [
    "run", "-t", "consecutive", "-t", "hello", "-m", "rnn", "-m", "gru", "-m", "scratch-rnn",
    "--seeds", "2", "--epochs", "4", "-o", "consecutive.length=300", "--threads", "1",
]  # fmt: skip
CELLS = 2 * 3 * 2
DETERMINED = ["train_loss", "test_loss", "test_accuracy", "train_accuracy", "params", "task_probe"]


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*HARNESS, *GRID, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished_cells(out: Path) -> list[Path]:
    return sorted((out / "cells").glob("*.json")) if (out / "cells").is_dir() else []


def wait_for_cells(proc: subprocess.Popen, out: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(finished_cells(out)) < count:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "cells.csv").set_index("cell_id").sort_index()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "run"
    proc = start(out, "--workers", "1")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return table(out)


@pytest.mark.parametrize("kill_after", [1, 5])
def test_killed_run_resumes_to_the_same_tables(tmp_path, clean_run, kill_after):
    out = tmp_path / "run"
    proc = start(out, "--workers", "1")
    wait_for_cells(proc, out, kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = finished_cells(out)
    assert kill_after <= len(done) < CELLS
    for path in done:  # every file on disk is whole
        json.loads(path.read_text())

    again = start(out, "--workers", "1")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert f"resuming: {len(done)} of {CELLS} cells already finished" in stdout
    resumed = table(out)
    assert len(resumed) == CELLS and resumed.index.is_unique
    pd.testing.assert_frame_equal(resumed[DETERMINED], clean_run[DETERMINED])
    assert not list(out.rglob("*.tmp"))


def test_ctrl_c_keeps_finished_cells_and_exits_130(tmp_path, clean_run):
    out = tmp_path / "run"
    proc = start(out, "--workers", "1")
    wait_for_cells(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    partial = table(out)  # the tables of what finished are written on the way out
    assert 2 <= len(partial) < CELLS
    again = start(out, "--workers", "1")
    assert again.wait(timeout=300) == 0
    pd.testing.assert_frame_equal(table(out)[DETERMINED], clean_run[DETERMINED])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_pool_worker_is_replaced_and_the_grid_completes(tmp_path, clean_run):
    out = tmp_path / "run"
    proc = start(out, "--workers", "2")
    wait_for_cells(proc, out, 1)
    workers = [
        c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()
    ]
    assert workers, "no pool workers found"
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    result = table(out)
    assert len(result) == CELLS and (result["status"] == "ok").all()
    pd.testing.assert_frame_equal(result[DETERMINED], clean_run[DETERMINED])


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped is dead for this purpose)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pool_workers(proc: subprocess.Popen) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = [
            c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()
        ]
        if workers:
            return workers
        time.sleep(0.1)
    raise AssertionError("no pool workers found")


def _assert_all_exit(pids: list[int], within: float = 15) -> None:
    deadline = time.monotonic() + within
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)], "pool workers outlived the main process"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_only_the_main_process_leaves_no_pool_workers(tmp_path):
    out = tmp_path / "run"
    proc = start(out, "--workers", "2")
    wait_for_cells(proc, out, 1)
    workers = _pool_workers(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _assert_all_exit(workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_like_ctrl_c(tmp_path, clean_run):
    out = tmp_path / "run"
    proc = start(out, "--workers", "2")
    wait_for_cells(proc, out, 2)
    workers = _pool_workers(proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    partial = table(out)  # the tables of what finished are written on the way out
    assert 2 <= len(partial) < CELLS
    _assert_all_exit(workers)
    again = start(out, "--workers", "1")
    assert again.wait(timeout=300) == 0
    pd.testing.assert_frame_equal(table(out)[DETERMINED], clean_run[DETERMINED])
