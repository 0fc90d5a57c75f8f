"""Choosing an executor, and what the runner does when one loses a cell; none of it needs Ray."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future

import pytest

import harness
from harness.errors import HarnessError
from harness.grid import runner
from harness.grid.executors import InProcessExecutor, ProcessExecutor, make_executor
from harness.grid.protocol import CellLost
from harness.plugin_api.manager import distribution_differences, plugin_distributions
from harness.settings.config import load_config


def test_make_executor_kinds():
    assert isinstance(make_executor("local", workers=4, threads=1), InProcessExecutor)
    assert isinstance(make_executor("pool", workers=1, threads=1), InProcessExecutor)
    pool = make_executor("pool", workers=2, threads=1)
    try:
        assert isinstance(pool, ProcessExecutor) and pool.capacity == 3 and not pool.in_process
    finally:
        pool.shutdown()
    with pytest.raises(HarnessError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(HarnessError, match="needs --executor ray"):
        make_executor("pool", gpus_per_cell=0.5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"executor": "spark"}, "executor must be one of local, pool, ray"),
        ({"gpus_per_cell": -1}, "gpus_per_cell must be a number >= 0"),
        ({"gpus_per_cell": 0.25}, "gpus_per_cell needs executor ray"),
        ({"ray_address": "127.0.0.2:6380"}, "ray_address needs executor ray"),
    ],
)
def test_executor_settings_are_checked(tmp_path, settings, message):
    with pytest.raises(HarnessError, match=message):
        load_config(None, settings, cwd=tmp_path)


def test_executor_ray_without_ray_installed_is_one_line(tmp_path):
    """Ray hidden from the import system, as on a machine without the extra."""
    code = "import sys; sys.modules['ray'] = None; from harness.cli import main; main()"
    args = ["run", "-t", "hello", "-m", "rnn", "--executor", "ray", "--out", str(tmp_path / "run")]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --executor ray needs Ray: pip install 'harness[ray]'"
    assert not (tmp_path / "run").exists()  # nothing started


def test_plugin_distributions_and_differences():
    mine = plugin_distributions()
    assert mine["harness"] == harness.__version__
    assert distribution_differences(mine, dict(mine)) == []
    there = {**mine, "harness": "9.9", "harness-extra": "1.0"}
    del mine["harness"]
    mine["harness-gone"] = "0.1"
    assert distribution_differences({**mine, "harness": "0.1.0"}, there) == [
        "harness is 9.9 there but 0.1.0 here",
        "harness-extra 1.0 is installed there but not here",
        "harness-gone 0.1 is not installed there",
    ]


class LosingExecutor(InProcessExecutor):
    """Runs calls in-process, but the first call for each cell in ``lose`` is 'lost', as when
    a Ray node dies under it."""

    lost: list[str] = []

    def __init__(self, lose: set[str], times: int) -> None:
        super().__init__(1)
        self.lose, self.times = lose, times

    def submit(self, fn, unit, *args):  # a unit: the cells run together (one, or a group)
        cell = unit[0]
        if cell.cell_id in self.lose and self.lost.count(cell.cell_id) < self.times:
            self.lost.append(cell.cell_id)
            future: Future = Future()
            future.set_exception(CellLost("its Ray worker or node died: NodeDiedError"))
            return future
        return super().submit(fn, unit, *args)


@pytest.mark.parametrize("times", [1, runner.MAX_CELL_LOSSES + 1])
def test_a_lost_cell_is_resubmitted_and_others_run_on(monkeypatch, tmp_path, times):
    lose = {"hello__gru__seed0"}
    LosingExecutor.lost = []
    monkeypatch.setattr(runner, "make_executor", lambda *a, **k: LosingExecutor(lose, times))
    cells = harness.run(
        tasks=["hello"], models=["rnn", "gru"], epochs=2, workers=1, out=str(tmp_path / "run")
    ).set_index("model")
    assert cells.loc["rnn", "status"] == "ok"
    if times <= runner.MAX_CELL_LOSSES:  # Ray gave up on it, the runner did not
        assert LosingExecutor.lost == ["hello__gru__seed0"] and cells.loc["gru", "status"] == "ok"
    else:
        assert cells.loc["gru", "status"] == "failed"
        assert "lost 4 times: its Ray worker or node died" in cells.loc["gru", "error"]


@pytest.mark.parametrize("command", ["run", "tune"])
def test_with_ray_cells_get_the_device_name_and_a_missing_ray_stops_before_anything(
    tmp_path, monkeypatch, command
):
    from harness.api import execute_run
    from harness.session import cell_device
    from harness.tuning import execute_tune

    ray = load_config(None, {"executor": "ray", "device": "auto"})
    assert cell_device(ray) == "auto"  # each node resolves it for its own hardware
    assert str(cell_device(load_config(None, {"device": "cpu"}))) == "cpu"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    out = tmp_path / "o"
    config = load_config(None, {"executor": "ray", "tasks": ["hello"], "out": str(out)})
    execute = execute_run if command == "run" else execute_tune
    with pytest.raises(HarnessError, match="--executor ray needs Ray"):
        execute(config)
    assert not out.exists()
