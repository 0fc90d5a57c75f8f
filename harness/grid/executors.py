"""Where cells run, behind one small interface: ``submit(fn, *args) -> Future``.

``local`` runs each call at once in this process (easy to debug); ``pool`` is a spawn-context
process pool (in-process when it has one worker); ``ray`` runs each call as a Ray task on a
local Ray instance or a cluster (:mod:`harness.grid.ray_executor`; Ray comes with the ``ray``
extra). The grid runner and any other caller (tuning trials) choose one with
:func:`make_executor`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from harness.errors import HarnessError
from harness.grid.cells import init_worker
from harness.grid.protocol import Executor

EXECUTORS = ("local", "pool", "ray")


class InProcessExecutor:
    """Runs each submitted call at once in this process (easy to debug, no start-up cost)."""

    in_process = True
    capacity = 1

    def __init__(self, threads: int) -> None:
        init_worker(threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self, cancel: bool = False) -> None:
        pass


class ProcessExecutor:
    """A process pool with the spawn context (fork is unsafe once threads or CUDA are in use)."""

    in_process = False

    def __init__(self, workers: int, threads: int) -> None:
        self.capacity = workers + 1  # one queued call per pool keeps every worker busy
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(threads, True),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:  # stop at once: cells in flight are lost and rerun on resume
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


def default_threads(kind: str, workers: int) -> int:
    """torch threads per cell: the cores split between pool workers; one per Ray task (Ray
    then runs as many cells on a node as it has CPUs)."""
    import os

    if kind == "ray":
        return 1
    return max(1, (os.cpu_count() or 1) // workers)


def make_executor(
    kind: str = "pool",
    *,
    workers: int = 1,
    threads: int | None = None,
    ray_address: str | None = None,
    gpus_per_cell: float = 0.0,
) -> Executor:
    """An executor of ``kind`` (``local``, ``pool`` or ``ray``).

    ``workers`` sizes the pool (one worker runs in-process); Ray sizes itself from the
    cluster's CPUs and GPUs. ``threads`` is torch's threads per cell (and a Ray task's CPUs).
    ``ray_address`` joins a running cluster (default: ``RAY_ADDRESS``, else a local Ray
    instance); ``gpus_per_cell`` > 0 runs cells on long-lived Ray actors that share GPUs.
    """
    if kind not in EXECUTORS:
        raise HarnessError(f"unknown executor {kind!r}: use {', '.join(EXECUTORS)}")
    if gpus_per_cell and kind != "ray":
        raise HarnessError("--gpus-per-cell needs --executor ray")
    threads = threads or default_threads(kind, workers)
    if kind == "ray":
        from harness.grid.ray_executor import RayExecutor

        return RayExecutor(threads, address=ray_address, gpus_per_cell=gpus_per_cell)
    if kind == "local" or workers == 1:
        return InProcessExecutor(threads)
    return ProcessExecutor(workers, threads)
