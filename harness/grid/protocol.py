"""The one small interface every executor meets, and the error that says a call was lost.

Its own module so that the executors (:mod:`harness.grid.executors`) and the Ray executor
(:mod:`harness.grid.ray_executor`) both import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol


class CellLost(Exception):
    """The process or node running a call died; the call itself did nothing wrong and can
    be submitted again."""


class Executor(Protocol):
    #: True when calls run in this process (they may then be given unpicklable objects).
    in_process: bool
    #: How many calls are worth keeping in flight at once: what the workers run at the same
    #: time (a pool: its workers and one queued call). Read again before every round of
    #: submissions, so it may change: Ray's follows the nodes there are. A tune sizes its
    #: batches of trials by it, so a study sees results before it suggests more.
    capacity: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...
    def shutdown(self, cancel: bool = False) -> None: ...
