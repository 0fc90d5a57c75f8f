"""Cells as Ray tasks, on a local Ray instance or a cluster (``pip install 'harness[ray]'``).

Each call is a Ray task asking for as many CPUs as the cell has torch threads, so Ray packs
cells onto nodes by their cores. With ``gpus_per_cell`` the calls run on long-lived actors
that each hold that fraction of a GPU instead (Ray restarts a GPU task's process after every
call by default); a fraction is bookkeeping only, so each actor caps its share of GPU memory.

Plugins come from installed entry points, which Ray's code shipping does not carry: before any
cell runs, every node reports its plugin distributions and a mismatch with the driver stops
the run with one line naming the node and the plugin.

A task whose worker process or node dies is retried by Ray (``MAX_RETRIES``); if Ray gives
up, the future fails with :class:`~harness.grid.executors.CellLost` and the runner resubmits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from harness.errors import HarnessError
from harness.grid.protocol import CellLost

#: Ray retries a task whose worker or node died this many times before reporting it lost.
MAX_RETRIES = 3
#: Seconds every node gets to report its plugins before the run stops.
PREFLIGHT_TIMEOUT = 120.0
#: Environment variables that shape plugin loading; the driver's values go to every worker.
FORWARDED_ENV = ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS")
INSTALL_HINT = "--executor ray needs Ray: pip install 'harness[ray]'"
#: Ray's single-machine mode (its default on macOS and Windows): a local instance's nodes talk
#: over 127.0.0.1 instead of the machine's outward address. Read once, when ray is imported.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def check_ray_installed() -> None:
    """A one-line :class:`HarnessError` that says how to install Ray, before anything starts."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        found = False
    if not found:
        raise HarnessError(INSTALL_HINT)


def import_ray(local: bool = False) -> Any:
    """The ``ray`` module; ``local`` (a local instance is to be started): keep it on loopback."""
    check_ray_installed()
    if local:
        os.environ.setdefault(SINGLE_MACHINE_ENV, "0")
    try:
        import ray
    except ImportError:
        raise HarnessError(INSTALL_HINT) from None
    return ray


def run_call(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """The body of every Ray task: worker processes are reused, so set torch's threads each
    time (cheap), then run the call."""
    from harness.grid.cells import init_worker

    init_worker(threads)
    return fn(*args)


def cap_gpu_memory(fraction: float) -> None:
    """Limit this process to ``fraction`` of each visible GPU's memory: Ray's fractional GPUs
    only count, so without a cap one cell could take the memory its neighbours were promised."""
    import torch

    if not torch.cuda.is_available():
        return
    for index in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(min(fraction, 1.0), index)


class CellActor:
    """A long-lived process holding a share of a GPU; runs one call at a time."""

    def __init__(self, threads: int, gpu_fraction: float) -> None:
        from harness.grid.cells import init_worker

        init_worker(threads)
        cap_gpu_memory(gpu_fraction)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class RayExecutor:
    """Submit calls as Ray tasks (or to GPU-sharing actors); futures via ``ObjectRef.future()``."""

    in_process = False

    def __init__(
        self, threads: int, *, address: str | None = None, gpus_per_cell: float = 0.0
    ) -> None:
        address = address or os.environ.get("RAY_ADDRESS") or None
        ray = import_ray(local=address is None)
        self._ray = ray
        self.threads = threads
        self.gpus_per_cell = gpus_per_cell
        self._started_here = False
        if not ray.is_initialized():
            self._connect(address)
        self._lost = _lost_errors(ray)
        self._refs: dict[Any, Future] = {}
        self._lock = threading.Lock()
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if cpus < threads:
                raise HarnessError(
                    f"a cell asks for {threads} CPU(s) (--threads) but the Ray cluster has {cpus}"
                )
            if address or not self._started_here:
                check_plugins(ray)
            if gpus_per_cell:
                self._actors = _ActorPool(ray, threads, gpus_per_cell, self._lost)
                self.capacity = self._actors.size
            else:
                self._task = ray.remote(run_call)
                self.capacity = 1_000_000  # Ray queues and schedules; submit everything
        except BaseException:
            self.shutdown(cancel=True)
            raise

    def _connect(self, address: str | None) -> None:
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options: dict[str, Any] = {
            "logging_level": logging.ERROR,
            "log_to_driver": False,
            "runtime_env": {"env_vars": env} if env else None,
        }
        if address is None:  # "local": never join some other cluster found on this machine
            options.update(address="local", include_dashboard=False)
        else:
            options["address"] = address
        try:
            self._ray.init(**options)
        except Exception as exc:  # connection refused, bad address, auth: one line
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise HarnessError(f"cannot start or join {where}: {_one_line(exc)}") from None
        self._started_here = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self.gpus_per_cell:
            return self._actors.submit(fn, *args)
        ref = self._task.options(num_cpus=self.threads, max_retries=MAX_RETRIES).remote(
            self.threads, fn, *args
        )
        outer: Future = Future()
        with self._lock:
            self._refs[ref] = outer
        ref.future().add_done_callback(lambda inner: self._settle(ref, inner, outer))
        return outer

    def _settle(self, ref: Any, inner: Future, outer: Future) -> None:
        with self._lock:
            self._refs.pop(ref, None)
        _settle(inner, outer, self._lost)

    def shutdown(self, cancel: bool = False) -> None:
        ray = self._ray
        if cancel:
            with self._lock:
                refs = list(self._refs)
            for ref in refs:  # Ctrl-C: stop the cells in flight, wherever they run
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if getattr(self, "_actors", None) is not None:
                self._actors.kill()
        if self._started_here and ray.is_initialized():
            ray.shutdown()


class _ActorPool:
    """GPU-sharing actors, made as calls need them (up to what the cluster's GPUs hold)."""

    def __init__(self, ray: Any, threads: int, gpus_per_cell: float, lost: tuple) -> None:
        gpus = ray.cluster_resources().get("GPU", 0)
        self.size = int(gpus // gpus_per_cell)
        if self.size < 1:
            raise HarnessError(
                f"--gpus-per-cell {gpus_per_cell} needs GPUs in the Ray cluster; it has {gpus:g}"
            )
        self._ray, self._lost = ray, lost
        self._actor_class = ray.remote(CellActor).options(
            num_cpus=threads,
            num_gpus=gpus_per_cell,
            max_restarts=MAX_RETRIES,
            max_task_retries=MAX_RETRIES,
        )
        self._args = (threads, gpus_per_cell)
        self._actors: list[Any] = []
        self._idle: deque = deque()
        self._waiting: deque = deque()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        outer: Future = Future()
        with self._lock:
            if not self._idle and len(self._actors) < self.size:
                actor = self._actor_class.remote(*self._args)
                self._actors.append(actor)
                self._idle.append(actor)
            if self._idle:
                self._dispatch(self._idle.popleft(), fn, args, outer)
            else:
                self._waiting.append((fn, args, outer))
        return outer

    def _dispatch(self, actor: Any, fn: Callable[..., Any], args: tuple, outer: Future) -> None:
        ref = actor.run.remote(fn, *args)
        ref.future().add_done_callback(lambda inner: self._finished(actor, inner, outer))

    def _finished(self, actor: Any, inner: Future, outer: Future) -> None:
        dead = not inner.cancelled() and isinstance(inner.exception(), self._lost)
        with self._lock:  # free the actor before the caller hears of the result
            if dead:
                self._actors.remove(actor)
            elif self._waiting:
                fn, args, waiting = self._waiting.popleft()
                self._dispatch(actor, fn, args, waiting)
            else:
                self._idle.append(actor)
        _settle(inner, outer, self._lost)

    def kill(self) -> None:
        with self._lock:
            actors, self._actors = list(self._actors), []
            self._idle.clear()
        for actor in actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)


def _settle(inner: Future, outer: Future, lost: tuple) -> None:
    """Pass a Ray future's outcome on; a dead worker, actor or node becomes :class:`CellLost`."""
    if outer.done():
        return
    if inner.cancelled():
        outer.cancel()
        return
    exc = inner.exception()
    if exc is None:
        outer.set_result(inner.result())
    elif isinstance(exc, lost):
        outer.set_exception(CellLost(f"its Ray worker or node died: {_one_line(exc)}"))
    else:
        outer.set_exception(exc)


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    errors = ray.exceptions
    return (
        errors.RayActorError,
        errors.WorkerCrashedError,
        errors.NodeDiedError,
        errors.ObjectLostError,
        errors.LocalRayletDiedError,
    )


def check_plugins(ray: Any, timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """Every alive node's plugin distributions must equal the driver's, or a one-line error
    names the node and the plugin."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from harness.plugin_api.manager import distribution_differences, plugin_distributions

    here = plugin_distributions()
    report = ray.remote(num_cpus=0, max_retries=0)(plugin_distributions)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    refs = {
        report.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(): node
        for node in nodes
    }
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    for ref, node in refs.items():
        name = f"{node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]})"
        if ref not in ready:
            raise HarnessError(f"Ray node {name} did not report its plugins within {timeout:g} s")
        try:
            there = ray.get(ref)
        except Exception as exc:
            raise HarnessError(
                f"Ray node {name} cannot load harness: {_one_line(exc)}; install the same "
                "packages on every node"
            ) from None
        problems = distribution_differences(here, there)
        if problems:
            raise HarnessError(
                f"plugin versions differ on Ray node {name}: {'; '.join(problems)}; install "
                "the same plugin versions on every node"
            )


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
