"""Benchmark options, markers and the task x model parametrization.

Plugins are discovered at collection time with :func:`harness.plugin_api.manager.load_plugins`, so a
third-party task or model installed in the environment is benchmarked with no change here.
Loading plugins is cheap (no torch import, no data): data is built per task at test time.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

from benchmarks.support import SWEEP_SHAPE
from harness.plugin_api.manager import Registry, load_plugins

ENV_DEVICE = "HARNESS_BENCH_DEVICE"
ENV_THREADS = "HARNESS_BENCH_THREADS"
ENV_ROUNDS = "HARNESS_BENCH_ROUNDS"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness-bench", "harness benchmarks")
    group.addoption(
        "--bench-device",
        default=os.environ.get(ENV_DEVICE, "cpu"),
        help=f"device to time on: cpu, cuda, cuda:N, mps, auto (env {ENV_DEVICE}; default cpu)",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=int(os.environ[ENV_THREADS]) if os.environ.get(ENV_THREADS) else None,
        help=f"torch.set_num_threads for the run (env {ENV_THREADS}; default: torch's own)",
    )
    group.addoption(
        "--bench-rounds",
        type=int,
        default=int(os.environ.get(ENV_ROUNDS, "50")),
        help=f"timed rounds per task x model step benchmark (env {ENV_ROUNDS}; default 50)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sweep: scaling sweep over sequence length and hidden size (minutes)"
    )
    config.addinivalue_line(
        "markers", "overhead: the harness loop against plain PyTorch, scratch-rnn against nn.RNN"
    )
    config.addinivalue_line(
        "markers", "seeds: a pair's seeds trained together (torch.func) against one after another"
    )
    threads = config.getoption("bench_threads")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch

    registry = plugin_registry()
    lines = [
        f"bench device {config.getoption('bench_device')}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        f"plugins: tasks {', '.join(registry.tasks)}; models {', '.join(registry.models)}",
    ]
    lines += [f"broken plugin {b.origin}: {b.error}" for b in registry.broken]
    return lines


@functools.cache
def plugin_registry() -> Registry:
    """Every installed plugin, loaded once per session (HARNESS_PLUGINS and friends apply)."""
    return load_plugins()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    registry = plugin_registry()
    if "task_name" in metafunc.fixturenames:
        params = []
        for task in registry.tasks.values():
            for model in registry.models.values():
                reason = model.cannot_serve(task.shape)
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                pair_id = f"{task.name}-{model.name}"
                params.append(pytest.param(task.name, model.name, id=pair_id, marks=marks))
        metafunc.parametrize(("task_name", "model_name"), params)
    if "sweep_model" in metafunc.fixturenames:
        names = [m.name for m in registry.models.values() if m.cannot_serve(SWEEP_SHAPE) is None]
        metafunc.parametrize("sweep_model", names)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return plugin_registry()


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> Any:
    """The torch device from --bench-device; a missing device fails the run with one line."""
    from harness.training.device import DeviceError, resolve_device

    try:
        return resolve_device(pytestconfig.getoption("bench_device"))
    except DeviceError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def task_data() -> Any:
    """``task_data(task)``: the task's seed-0 data, built once per task on first use."""
    cache: dict[str, Any] = {}

    def get(task: Any) -> Any:
        if task.name not in cache:
            cache[task.name] = task.make_data(0)
        return cache[task.name]

    return get


@pytest.fixture
def rounds(pytestconfig: pytest.Config) -> int:
    return pytestconfig.getoption("bench_rounds")
