"""One run writes to a folder at a time, and the start-up sweep removes only temporary files
whose writer is gone, never a live run's in-flight file."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from harness.errors import HarnessError
from harness.storage.files import is_stale_temp
from harness.storage.run_folder import RunFolder
from tests.conftest import HARNESS


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    refused = pytest.raises(HarnessError, match="another harness run is writing to")
    with folder.locked(), refused, RunFolder(folder.path).locked():
        pass
    with folder.locked():  # released on the way out
        pass


def _temp(folder, name: str, pid: int, age: float = 0):
    path = folder / f".{name}.{pid}.abc_12.tmp"
    path.write_bytes(b"partial")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_sweep_keeps_a_live_writers_temp_file_and_removes_the_dead_ones(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    (folder.path / "cells").mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        mine = _temp(folder.path / "cells", "a.json", live.pid)
        gone = _temp(folder.path / "cells", "b.json", dead.pid)
        ancient = _temp(folder.path, "cells.csv", live.pid, age=2 * 3600)
        unnamed = folder.path / ".old-style.tmp"
        unnamed.write_bytes(b"")
        assert not is_stale_temp(mine) and is_stale_temp(gone) and is_stale_temp(ancient)
        assert folder.sweep_stale_temp_files() == 2
        assert mine.exists() and unnamed.exists()
        assert not gone.exists() and not ancient.exists()
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "run"
    grid = ["run", "-t", "hello", "-m", "rnn", "-m", "gru", "-m", "lstm", "--seeds", "3",
            "--workers", "1", "--out", str(out)]  # fmt: skip
    first = subprocess.Popen([*HARNESS, *grid], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, "first run did not start"
            time.sleep(0.05)
        second = subprocess.run([*HARNESS, *grid], capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second started"
        assert second.returncode == 2, second.stdout + second.stderr
        assert "another harness run is writing to" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        _, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr  # the first run is unharmed
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
