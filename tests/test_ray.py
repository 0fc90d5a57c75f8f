"""--executor ray: a local Ray instance gives the pool's metrics; a two-node cluster on loopback
survives losing a node mid-run; a node with another plugin version is refused in one line.

Needs the ``ray`` extra. Without it these tests are skipped, except under CI (``CI`` set),
where a missing Ray is a failure: CI installs ``harness[ray]``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import HARNESS
from tests.distributions import make_distribution

# A local Ray instance in this process stays on loopback (see harness.grid.ray_executor).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
try:
    import ray
    from ray import cloudpickle
except ImportError:
    if os.environ.get("CI"):
        pytest.fail(
            "ray is not installed, and CI must run the Ray tests: pip install 'harness[ray]'"
        )
    pytest.skip("ray is not installed (pip install 'harness[ray]')", allow_module_level=True)

import contextlib

from harness.errors import HarnessError
from harness.grid.ray_executor import RayExecutor, cap_gpu_memory

BIN = Path(sys.executable).parent
GRID = [
    "run",
    "-t",
    "consecutive",
    "-m",
    "rnn",
    "-m",
    "gru",
    "--seeds",
    "3",
    "--epochs",
    "8",
    "-o",
    "consecutive.length=300",
    "--threads",
    "1",
]  # fmt: skip  (six cells of a second or two: a node can be killed while it runs one)
DETERMINED = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "params"]
FAKE_PLUGIN = "harness-fakeplug"


def harness_run(*args: str, env: dict | None = None, timeout: float = 240):
    return subprocess.run(
        [*HARNESS, *args],
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "cells.csv").set_index("cell_id").sort_index()


def assert_same_metrics(one: pd.DataFrame, other: pd.DataFrame) -> None:
    assert list(one.index) == list(other.index)
    assert (one["status"] == "ok").all() and (other["status"] == "ok").all()
    pd.testing.assert_frame_equal(one[DETERMINED], other[DETERMINED])


@pytest.fixture(scope="module")
def pool_table(tmp_path_factory):
    """The grid on the default process pool: the reference."""
    out = tmp_path_factory.mktemp("pool") / "run"
    result = harness_run(*GRID, "--workers", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return table(out)


def test_local_ray_instance_gives_the_pools_metrics(tmp_path, pool_table):
    on_ray = tmp_path / "ray"
    env = {"RAY_ADDRESS": "", "RAY_TMPDIR": tempfile.mkdtemp(prefix="r", dir="/tmp")}
    try:
        result = harness_run(*GRID, "--executor", "ray", "--out", str(on_ray), env=env)
    finally:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert_same_metrics(pool_table, table(on_ray))


def whoami() -> tuple[int, list]:
    return os.getpid(), [str(g) for g in ray.get_gpu_ids()]


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests


def test_gpu_sharing_actors_pack_cells_onto_one_gpu():
    """A GPU is only bookkeeping to Ray, so a CPU-only instance that declares one shows the
    packing: with 0.5 GPU per cell, two long-lived actors share GPU 0 and serve every call."""
    ray.init(
        address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR"
    )
    try:
        executor = RayExecutor(1, gpus_per_cell=0.5)
        assert executor.capacity == 2
        results = [f.result(timeout=120) for f in [executor.submit(whoami) for _ in range(6)]]
        pids = {pid for pid, _ in results}
        assert len(pids) == 2 and os.getpid() not in pids
        assert all(gpus == ["0"] for _, gpus in results)
        executor.shutdown()
        with pytest.raises(HarnessError, match="--gpus-per-cell 2.0 needs GPUs"):
            RayExecutor(1, gpus_per_cell=2.0)
    finally:
        ray.shutdown()


def test_gpu_memory_is_capped_to_the_cells_share(monkeypatch):
    import torch

    capped = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, i: capped.append((f, i))
    )
    cap_gpu_memory(0.25)
    assert capped == [(0.25, 0), (0.25, 1)]


# --- a cluster of separate nodes on loopback -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class Cluster:
    """Ray nodes started with `ray start --block`, each in its own session so a node (raylet,
    object store, workers) can be killed as one process group. Ray maps 127.0.0.1 to the
    machine's outward address, so nodes take other loopback addresses: 127.0.0.2, .3, ..."""

    def __init__(self, root: Path, site: Path) -> None:
        self.root, self.site = root, site
        self.port = free_port()
        self.address = f"127.0.0.2:{self.port}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_ADDRESS": "",
        }
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # a worker node refuses it
        self.nodes: dict[str, subprocess.Popen] = {}

    def start_node(self, ip: str, site: Path, cpus: int = 1) -> None:
        if not self.nodes:
            where = ["--head", f"--port={self.port}", f"--temp-dir={self.root}"]
            where += ["--include-dashboard=false"]
        else:
            where = [f"--address={self.address}"]
        paths = [str(site), os.environ.get("PYTHONPATH", "")]
        env = {**self.env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        self.nodes[ip] = subprocess.Popen(
            ["ray", "start", "--block", f"--node-ip-address={ip}", f"--num-cpus={cpus}",
             "--disable-usage-stats", *where],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.wait_for_nodes(len(self.nodes))

    def alive_nodes(self) -> set[str]:
        code = (
            f"import ray; ray.init(address='{self.address}', logging_level='ERROR');"
            "print(*sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60
        )
        return set(result.stdout.split()) if result.returncode == 0 else set()

    def wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while len(self.alive_nodes()) < count:
            for ip, node in self.nodes.items():
                assert node.poll() is None, f"ray node {ip} exited with {node.returncode}"
            assert time.monotonic() < deadline, f"{count} Ray nodes not up in {timeout} s"
            time.sleep(1)

    def kill(self, ip: str) -> None:
        node = self.nodes.pop(ip)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)

    def stop(self) -> None:
        for ip in list(self.nodes):
            self.kill(ip)


def fake_plugin(root: Path, version: str) -> Path:
    """A plugin distribution that registers nothing: only its version matters here."""
    module = "from harness import hookimpl\n\nHARNESS_API = 1\n"
    return make_distribution(
        root, FAKE_PLUGIN, version, {"harness_fakeplug": module}, {"fakeplug": "harness_fakeplug"}
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a worker node on loopback, both with harness-fakeplug 1.0.0."""
    site = fake_plugin(tmp_path_factory.mktemp("site1"), "1.0.0")
    root = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths
    cluster = Cluster(root, site)
    try:
        cluster.start_node("127.0.0.2", site)
        cluster.start_node("127.0.0.3", site)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def driver_env(cluster: Cluster, site: Path) -> dict[str, str]:
    env = {k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_a_node_lost_mid_run_is_retried_and_the_grid_completes(cluster, tmp_path, pool_table):
    out = tmp_path / "run"
    env = driver_env(cluster, cluster.site)
    driver = subprocess.Popen(
        [*HARNESS, *GRID, "--executor", "ray", "--ray-address", cluster.address, "--out", str(out)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not list((out / "cells").glob("*.json")):  # cells run on both nodes now
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no cell finished"
            time.sleep(0.1)
        assert len(list((out / "cells").glob("*.json"))) < len(pool_table)
        cluster.kill("127.0.0.3")
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, stderr
    # The grid may finish on the surviving node before Ray's health checks declare the killed
    # one dead: wait (bounded) for the cluster to see it gone.
    deadline = time.monotonic() + 120
    while "127.0.0.3" in cluster.alive_nodes():
        assert time.monotonic() < deadline, "the killed node is still listed as alive"
        time.sleep(2)
    assert_same_metrics(pool_table, table(out))


@pytest.mark.slow
def test_a_node_with_another_plugin_version_is_refused_in_one_line(cluster, tmp_path):
    newer = fake_plugin(tmp_path / "site2", "2.0.0")
    cluster.start_node("127.0.0.4", newer)
    try:
        out = tmp_path / "run"
        result = harness_run(
            *GRID, "--executor", "ray", "--ray-address", cluster.address, "--out", str(out),
            env=driver_env(cluster, cluster.site), timeout=180,
        )  # fmt: skip
    finally:
        cluster.kill("127.0.0.4")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: plugin versions differ on Ray node 127.0.0.4 (")
    assert f"{FAKE_PLUGIN} is 2.0.0 there but 1.0.0 here" in lines[0]
    assert not list((out / "cells").glob("*.json"))


# --- issue #20: sizes, joining, nodes that join late (more in tests/test_ray_hardening.py) ----


@pytest.mark.slow
def test_threads_beyond_the_largest_node_is_one_line(cluster, tmp_path):
    """Two 1-CPU nodes make 2 CPUs, but a Ray task never spans nodes: `--threads 2` waited
    forever. Now it is compared with the largest node."""
    where = ["--executor", "ray", "--ray-address", cluster.address, "--no-timing"]
    two_threads = [*GRID[:-1], "2"]  # GRID ends with --threads 1
    env = driver_env(cluster, cluster.site)
    result = harness_run(*two_threads, *where, "--out", str(tmp_path / "run"), env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: a cell asks for 2 CPUs (--threads 2) but the largest Ray ")
    assert "node has 1 (" in lines[0]


@pytest.mark.slow
def test_a_driver_without_the_clusters_token_is_one_line_at_once(cluster, tmp_path):
    """Without RAY_AUTH_MODE it took 22 s and 20 lines of Ray's warnings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    started = time.monotonic()
    where = ["--executor", "ray", "--ray-address", cluster.address, "--no-timing"]
    result = subprocess.run(
        [*HARNESS, *GRID, *where, "--out", str(tmp_path / "run")],
        env={**env, "COLUMNS": "200", "RAY_ADDRESS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot join the Ray cluster at {cluster.address}: ")
    assert "set RAY_AUTH_MODE=token" in lines[0]
    assert elapsed < 20


@pytest.mark.slow
def test_a_node_joining_mid_run_with_another_plugin_version_is_refused(cluster, tmp_path):
    """The preflight checks the nodes there when the run starts; one that joined later ran
    cells with another plugin version. Now each worker checks before its first cell."""
    out = tmp_path / "run"
    seeds = GRID.index("--seeds") + 1
    grid = [*GRID[:seeds], "15", *GRID[seeds + 1 :]]  # 30 cells: running when the node is up
    where = ["--executor", "ray", "--ray-address", cluster.address, "--no-timing"]
    driver = subprocess.Popen(
        [*HARNESS, *grid, *where, "--out", str(out)],
        env={**os.environ, "COLUMNS": "200", **driver_env(cluster, cluster.site)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    newer = fake_plugin(tmp_path / "site2", "2.0.0")
    try:
        deadline = time.monotonic() + 180
        while not list((out / "cells").glob("*.json")):  # past the preflight
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no cell finished"
            time.sleep(0.1)
        cluster.start_node("127.0.0.5", newer)
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
        if "127.0.0.5" in cluster.nodes:
            cluster.kill("127.0.0.5")
    assert driver.returncode == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: plugin versions differ on Ray node 127.0.0.5 (")
    assert f"{FAKE_PLUGIN} is 2.0.0 there but 1.0.0 here" in lines[0]
    node = lines[0].split("(")[1].split(")")[0]  # the new node's id, first 8 digits
    made = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert made and not [r for r in made if r["ray_node"].startswith(node)]
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
