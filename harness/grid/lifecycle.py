"""How processes end: pool workers die with the main process, and SIGTERM stops a run the way
Ctrl-C does (finished cells tabled, run.json "interrupted").

A pool worker whose parent is killed outright (SIGKILL, the OOM killer) would otherwise live on
forever with torch loaded, holding hundreds of MB each. Two guards, either enough alone: on
Linux the kernel sends the worker SIGKILL when its parent exits (``prctl(PR_SET_PDEATHSIG)``),
and everywhere a daemon thread notices that the parent has changed (the orphan was adopted).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: How often the portable guard looks at the parent, in seconds: cheap, and soon enough.
POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so it is handled the same."""


def die_with_parent() -> None:
    """Make this process exit as soon as the process that started it is gone."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # no libc, no prctl: the thread below suffices
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()


def _watch(parent: int) -> None:
    event = threading.Event()
    while not event.wait(POLL_SECONDS):
        if os.getppid() != parent:
            os._exit(1)  # nothing to save here: the parent keeps every finished cell


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt).

    Only the main thread may set signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Put this process's SIGTERM handler back after the block.

    ``ray.init`` replaces it (with ``sys.exit(15)``, and its C++ core adds a stack dump), so a
    ``kill`` of a Ray run would skip what :func:`sigterm_as_interrupt` promises: connecting to
    Ray happens inside this block. A SIGTERM that arrives within it (Ray's handler turns it
    into ``SystemExit(15)``) goes to the handler that was there before. Only the main thread
    may set handlers; elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as exc:
        if exc.code == signal.SIGTERM and callable(previous):
            previous(signal.SIGTERM, None)  # e.g. raises Terminated, as outside the block
        raise
    finally:
        if previous is not None:  # None: set outside Python, cannot be put back
            signal.signal(signal.SIGTERM, previous)
