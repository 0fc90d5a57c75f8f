"""--executor ray, hardened (issue #20): SIGTERM stops a Ray run as it stops the pool, a tune asks
only for as many trials as the workers run, a cell no node can hold and a cluster that cannot
be joined are one line each, Ray's and the pool's records of a cell hash alike, a node is
checked before its first cell, and every record says where it ran.

The tests that need a cluster of several nodes are in tests/test_ray.py (its ``cluster``
fixture). Needs the ``ray`` extra; skipped without it (except under CI, as there).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import HARNESS

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # as tests/test_ray.py
try:
    import ray
    from ray import cloudpickle
except ImportError:
    if os.environ.get("CI"):
        pytest.fail("ray is not installed, and CI must run the Ray tests")
    pytest.skip("ray is not installed (pip install 'harness[ray]')", allow_module_level=True)

from harness.errors import HarnessError
from harness.grid import ray_executor
from harness.grid.cells import Cell, base_record, device_kind
from harness.grid.lifecycle import Terminated, keep_sigterm_handler, sigterm_as_interrupt
from harness.grid.ray_executor import CONNECT_TIMEOUT, RayExecutor, node_slots
from harness.grid.runner import load_record
from harness.storage.run_folder import RunFolder
from tests.test_ray import GRID, free_port, harness_run

ROOT = Path(__file__).resolve().parents[1]
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))}


# --- SIGTERM, records' provenance, resuming a Ray run with the pool ---------------------------


@pytest.mark.slow
def test_sigterm_stops_a_ray_run_as_the_pool_and_the_pool_resumes_it(tmp_path):
    """ray.init replaced the harness's SIGTERM handler: a `kill` exited 15 with Ray's stack
    dump, run.json stayed "running", no tables. And Ray's records hashed device "auto" where
    the pool's hash "cpu", so resuming with the pool reran every cell."""
    out = tmp_path / "run"
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    env = {**os.environ, "COLUMNS": "200", "RAY_ADDRESS": "", "RAY_TMPDIR": ray_tmp}
    driver = subprocess.Popen(
        [*HARNESS, *GRID, "--executor", "ray", "--no-timing", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not list((out / "cells").glob("*.json")):
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no cell finished"
            time.sleep(0.1)
        driver.send_signal(signal.SIGTERM)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert driver.returncode == 143, (stdout, stderr)
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr, stderr
    assert "interrupted" in stdout
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["finished"]
    assert info["resolved"]["ray_address"] == "local"
    on_ray = records(out)
    assert 0 < len(on_ray) < 6
    table = (out / "cells.csv").read_text().splitlines()
    assert len(table) == 1 + len(on_ray)  # the finished cells are tabled
    for record in on_ray.values():
        assert record["device"] == "cpu" or record["device"].startswith(("cuda", "mps"))
        assert record["host"] == platform.node()
        assert len(record["ray_node"]) == 56  # a Ray node id, in hex

    resumed = harness_run(*GRID, "--workers", "2", "--no-timing", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(on_ray)} of 6 cells already finished" in resumed.stdout
    after = records(out)
    assert len(after) == 6
    for cell_id, record in on_ray.items():
        assert after[cell_id] == record  # kept, not rerun
    for cell_id in set(after) - set(on_ray):
        assert after[cell_id]["host"] == platform.node() and "ray_node" not in after[cell_id]


def test_keep_sigterm_handler_puts_back_what_ray_init_replaces():
    def ours(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        with keep_sigterm_handler():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_while_ray_connects_is_the_harnesss_too():
    """ray.init's own handler is in place while it starts: its SystemExit(15) is handed on."""
    with sigterm_as_interrupt():
        ours = signal.getsignal(signal.SIGTERM)
        with pytest.raises(Terminated), keep_sigterm_handler():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this returns
        assert signal.getsignal(signal.SIGTERM) is ours


# --- the device in the config hash ------------------------------------------------------------


def test_a_cell_hashes_its_device_kind_and_auto_as_it_resolved(registry, tmp_path):
    recipe = dataclasses.replace(registry.tasks["hello"].recipe, epochs=1)
    auto = Cell("hello", "rnn", 0, recipe, "auto")
    here = Cell("hello", "rnn", 0, recipe, device_kind("auto"))  # the pool resolves at plan
    assert auto.config_hash() == here.config_hash()
    cuda = Cell("hello", "rnn", 0, recipe, "cuda")
    assert Cell("hello", "rnn", 0, recipe, "cuda:1").config_hash() == cuda.config_hash()
    assert Cell("hello", "rnn", 0, recipe, "cpu").config_hash() != cuda.config_hash()

    # With Ray a node resolves "auto" itself: its record says what it got, and a resume
    # compares the record under that device, whatever the driver has.
    folder = RunFolder.create(tmp_path / "run")
    made_on_gpu = {**base_record(auto), "device": "cuda", "status": "ok", "curve": []}
    folder.write_record({**made_on_gpu, "config_hash": auto.config_hash("cuda")})
    assert load_record(folder, auto) is not None
    assert load_record(folder, cuda) is not None
    assert load_record(folder, Cell("hello", "rnn", 0, recipe, "cpu")) is None
    folder.write_record({**made_on_gpu, "config_hash": "0" * 16})  # other settings
    assert load_record(folder, auto) is None


# --- sizes: a cell no node can hold, capacity ----------------------------------------------


def one_cpu_node(cpus: float = 1, gpus: float = 0) -> dict:
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return {"Alive": True, "NodeID": "ab" * 28, "Resources": resources}


def test_slots_are_counted_per_node_and_a_cell_too_big_for_every_node_is_one_line():
    nodes = [one_cpu_node(), one_cpu_node()]  # 2 CPUs in all, but a task never spans nodes
    assert [node_slots(n, 1) for n in nodes] == [1, 1]
    assert [node_slots(n, 2) for n in nodes] == [0, 0]
    message = ray_executor._too_big(nodes, 2, 0.0)
    assert message.startswith("a cell asks for 2 CPUs (--threads 2) but the largest Ray node ")
    assert "has 1 (2 node(s), 2 CPUs in all)" in message and "\n" not in message
    gpu = one_cpu_node(cpus=8, gpus=1)
    assert node_slots(gpu, 1, 0.25) == 4 and node_slots(gpu, 4, 0.25) == 2
    assert node_slots(gpu, 1, 0.1) == 8  # ten GPU shares, eight CPUs
    assert "needs GPUs" in ray_executor._too_big([gpu], 1, 2.0)


def test_a_node_lacking_the_drivers_plugins_refuses_its_first_call():
    from harness.plugin_api.manager import plugin_distributions

    ray_executor.check_node_plugins(plugin_distributions())  # the same: fine
    wanted = {**plugin_distributions(), "harness-elsewhere": "9.9"}
    with pytest.raises(HarnessError, match="plugin versions differ on Ray node ") as caught:
        ray_executor.check_node_plugins(wanted)
    assert "harness-elsewhere 9.9 is not installed there" in str(caught.value)


# --- joining: bounded, one line ------------------------------------------------------------


def test_a_wrong_port_is_one_line_within_the_timeout_and_run_json_says_failed(tmp_path):
    """It hung 9.5 minutes behind 42 lines of Ray's warnings, after an empty progress bar."""
    out = tmp_path / "run"
    started = time.monotonic()
    result = harness_run(
        "run", "-t", "hello", "-m", "rnn", "--epochs", "1", "--no-timing", "--executor", "ray",
        "--ray-address", f"127.0.0.1:{free_port()}", "--out", str(out),
        env={"RAY_ADDRESS": ""}, timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot join the Ray cluster at 127.0.0.1:")
    assert "nothing answers there" in lines[0]
    assert elapsed < CONNECT_TIMEOUT + 30
    assert "cells" not in result.stdout  # no progress bar for cells that never start
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and info["finished"]
    assert info["error"].startswith("HarnessError: cannot join the Ray cluster")


# --- on a local Ray instance in this process -----------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """A local instance of 2 CPUs, whatever the machine has: the executor's capacity is 2."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


def raise_harness_error() -> None:
    raise HarnessError("one line from the node")


def test_capacity_is_what_the_nodes_run_at_once_and_a_node_refusal_is_one_line(local_ray):
    executor = RayExecutor(1)
    try:
        assert executor.capacity == 2
        failed = executor.submit(raise_harness_error).exception(timeout=120)
        assert type(failed) is HarnessError and str(failed) == "one line from the node"
        # a node that joined after the preflight, without a plugin the driver has:
        executor._plugins = {**executor._plugins, "harness-elsewhere": "9.9"}
        refused = executor.submit(time.time).exception(timeout=120)
        assert type(refused) is HarnessError
        assert str(refused).startswith("plugin versions differ on Ray node ")
        assert "harness-elsewhere 9.9 is not installed there" in str(refused)
    finally:
        executor.shutdown()
    assert RayExecutor(2).capacity == 1
    with pytest.raises(HarnessError, match=r"asks for 3 CPUs \(--threads 3\) but the largest"):
        RayExecutor(3)


def test_a_tune_on_ray_starts_trials_only_as_workers_free_up(local_ray, registry, tmp_path):
    """The executor said 1,000,000, so a tune asked its whole budget at once and TPE never saw
    a result. Now each study asks for what the 2 CPUs run, and asks again once told."""
    import optuna

    from harness.grid.executors import make_executor
    from harness.tuning import PairStudy, run_trials, search_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = registry.tasks["hello"]
    recipe = dataclasses.replace(task.recipe, epochs=2)
    base = Cell("hello", "rnn", 1_000_000, recipe, "auto", evaluate_test=False)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    budget = 6
    study = PairStudy(
        storage, base, search_space(recipe, None), task.primary_metric, task.higher_is_better,
        budget, 0,
    )  # fmt: skip
    trial_out = RunFolder.create(tmp_path / "run").trials
    run_trials([study], trial_out, lambda: make_executor("ray", threads=1))
    trials = study.study.get_trials(deepcopy=False)
    assert len(trials) == budget and all(t.datetime_complete for t in trials)
    for trial in trials:  # trials asked and not yet told when this one was asked
        running = [
            other
            for other in trials
            if other.datetime_start <= trial.datetime_start < other.datetime_complete
        ]
        assert len(running) <= 2, [(t.number, t.datetime_start) for t in running]


# --- the example plugin's docstring --------------------------------------------------------


def test_the_example_plugin_names_only_what_it_registers():
    package = ROOT / "examples" / "harness-longrange" / "src" / "harness_longrange"
    registered = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "name":
                registered.add(getattr(node.value, "value", None))
            if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
                "name"
            ]:
                registered.add(getattr(node.value, "value", None))
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    named = re.findall(r"the `([\w-]+)` (?:task|model)", doc)
    assert named and set(named) <= registered, (named, registered)


def test_the_documented_connect_timeout_is_the_one_used():
    from tests.conftest import invoke

    assert f"within {CONNECT_TIMEOUT:g} s" in " ".join(invoke("run", "--help").output.split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"joined within {CONNECT_TIMEOUT:g} s (`CONNECT_TIMEOUT`" in readme
