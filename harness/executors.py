"""Where cells run, behind one small interface: ``submit(fn, *args) -> Future``.

In-process for debugging and for the default single worker; a spawn-context process pool for
``--workers N``. A cluster engine fits the same interface (Ray's ``ObjectRef.future()``, Dask's
``client.get_executor()``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from harness.cells import init_worker


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...
    def shutdown(self, cancel: bool = False) -> None: ...


class InProcessExecutor:
    """Runs each submitted call at once in this process (easy to debug, no start-up cost)."""

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

    def __init__(self, workers: int, threads: int) -> None:
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


def make_executor(workers: int, threads: int | None = None) -> Executor:
    """One worker: in-process; more: a process pool. ``threads`` per worker defaults to the
    cores split between the workers, so they do not fight over cores."""
    import os

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        return InProcessExecutor(threads)
    return ProcessExecutor(workers, threads)
