"""Cells as Ray tasks, on a local Ray instance or a cluster (``pip install 'harness[ray]'``).

Each call is a Ray task asking for as many CPUs as the cell has torch threads, so Ray packs
cells onto nodes by their cores. With ``gpus_per_cell`` the calls run on long-lived actors
that each hold that fraction of a GPU instead (Ray restarts a GPU task's process after every
call by default); a fraction is bookkeeping only, so each actor caps its share of GPU memory.

Plugins come from installed entry points, which Ray's code shipping does not carry: before any
cell runs, every node reports its plugin distributions and a mismatch with the driver stops
the run with one line naming the node and the plugin. A node that joins later is checked by
the first call each of its worker processes runs (every call carries the driver's versions).

Only as many calls are in flight as the nodes have room for (``capacity``: per node, its CPUs
over the CPUs a cell asks for, and with ``gpus_per_cell`` its GPUs over that share), re-read
every ``CAPACITY_REFRESH`` seconds so a node that joins gets cells; a tune's studies then see
results before they suggest more. A cell no node can hold is refused at once, in one line.

Joining a running cluster is bounded (``CONNECT_TIMEOUT``) and fails in one line; ``ray.init``
replaces the SIGTERM handler, which is put back, so a ``kill`` stops a Ray run as Ctrl-C does.

A task whose worker process or node dies is retried by Ray (``MAX_RETRIES``); if Ray gives
up, the future fails with :class:`~harness.grid.executors.CellLost` and the runner resubmits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from harness.errors import HarnessError
from harness.grid.lifecycle import keep_sigterm_handler
from harness.grid.protocol import CellLost

#: Ray retries a task whose worker or node died this many times before reporting it lost.
MAX_RETRIES = 3
#: Seconds every node gets to report its plugins before the run stops.
PREFLIGHT_TIMEOUT = 120.0
#: Seconds joining a running cluster (``--ray-address``, ``RAY_ADDRESS``) may take: first
#: whether anything answers at the head's address, then Ray's own connection (one attempt of
#: at most this long; Ray alone retries for minutes). Either failing is one line.
CONNECT_TIMEOUT = 15.0
#: How often, in seconds, the executor re-reads the nodes for its capacity.
CAPACITY_REFRESH = 5.0
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


def run_call(threads: int, plugins: dict[str, str], fn: Callable[..., Any], *args: Any) -> Any:
    """The body of every Ray task: worker processes are reused, so set torch's threads each
    time (cheap), check once per process that this node has the driver's ``plugins``, then
    run the call."""
    from harness.grid.cells import init_worker

    check_node_plugins(plugins)
    init_worker(threads)
    return fn(*args)


#: The driver's plugin versions this worker process has been checked against.
_checked: set[frozenset] = set()


def check_node_plugins(expected: dict[str, str]) -> None:
    """Raise a one-line :class:`HarnessError` naming this node when its plugin distributions
    differ from ``expected`` (the driver's): a node that joined after the preflight is caught
    before its first cell. Checked once per worker process and set of versions."""
    key = frozenset(expected.items())
    if key in _checked:
        return
    from harness.plugin_api.manager import distribution_differences, plugin_distributions

    problems = distribution_differences(expected, plugin_distributions())
    if problems:
        raise HarnessError(
            f"plugin versions differ on Ray node {_this_node()}: {'; '.join(problems)}; "
            "install the same plugin versions on every node"
        )
    _checked.add(key)


def _this_node() -> str:
    """``address (node id prefix)`` of the Ray node this process runs on, as the preflight
    names nodes."""
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id() or "?"
        return f"{ray.util.get_node_ip_address()} ({node_id[:8]})"
    except Exception:  # not in a Ray worker
        return socket.gethostname()


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

    def __init__(self, threads: int, gpu_fraction: float, plugins: dict[str, str]) -> None:
        from harness.grid.cells import init_worker

        self.plugins = plugins
        init_worker(threads)
        cap_gpu_memory(gpu_fraction)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        check_node_plugins(self.plugins)  # in the call, so the error reaches the driver as one
        return fn(*args)


class RayExecutor:
    """Submit calls as Ray tasks (or to GPU-sharing actors); futures via ``ObjectRef.future()``."""

    in_process = False

    def __init__(
        self, threads: int, *, address: str | None = None, gpus_per_cell: float = 0.0
    ) -> None:
        address = join_address(address)
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
        self._capacity, self._read_at = 0, -math.inf
        try:
            from harness.plugin_api.manager import plugin_distributions

            nodes = _alive(ray)
            if not any(node_slots(node, threads, gpus_per_cell) for node in nodes):
                raise HarnessError(_too_big(nodes, threads, gpus_per_cell))
            if address or not self._started_here:
                check_plugins(ray)
            self._plugins = plugin_distributions()
            if gpus_per_cell:
                self._actors = _ActorPool(
                    ray, threads, gpus_per_cell, self._plugins, self._lost, lambda: self.capacity
                )
            else:
                self._task = ray.remote(run_call)
        except BaseException:
            self.shutdown(cancel=True)
            raise

    @property
    def capacity(self) -> int:
        """Calls worth keeping in flight: the cells the alive nodes can run at once (at least
        one), re-read every ``CAPACITY_REFRESH`` seconds."""
        now = time.monotonic()
        if now - self._read_at >= CAPACITY_REFRESH:
            with contextlib.suppress(Exception):  # the cluster busy or away: keep the last
                nodes = _alive(self._ray)
                self._capacity = sum(node_slots(n, self.threads, self.gpus_per_cell) for n in nodes)
            self._read_at = now
        return max(1, self._capacity)

    def _connect(self, address: str | None) -> None:
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options: dict[str, Any] = {
            "logging_level": logging.ERROR,
            "log_to_driver": False,
            "runtime_env": {"env_vars": env} if env else None,
        }
        if address is None:  # "local": never join some other cluster found on this machine
            options.update(address="local", include_dashboard=False)
            bounded: Any = contextlib.nullcontext()
        else:
            options["address"] = address
            bounded = _bounded_join(address)
        try:
            with keep_sigterm_handler(), bounded:
                self._ray.init(**options)
        except HarnessError:
            raise
        except Exception as exc:  # connection refused, bad address, auth: one line
            if address is None:
                raise HarnessError(f"cannot start a local Ray instance: {_one_line(exc)}") from None
            raise HarnessError(
                f"cannot join the Ray cluster at {address}: {_join_error(exc)}"
            ) from None
        self._started_here = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self.gpus_per_cell:
            return self._actors.submit(fn, *args)
        ref = self._task.options(num_cpus=self.threads, max_retries=MAX_RETRIES).remote(
            self.threads, self._plugins, fn, *args
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

    def __init__(
        self,
        ray: Any,
        threads: int,
        gpus_per_cell: float,
        plugins: dict[str, str],
        lost: tuple,
        size: Callable[[], int],
    ) -> None:
        self._ray, self._lost, self._size = ray, lost, size
        self._actor_class = ray.remote(CellActor).options(
            num_cpus=threads,
            num_gpus=gpus_per_cell,
            max_restarts=MAX_RETRIES,
            max_task_retries=MAX_RETRIES,
        )
        self._args = (threads, gpus_per_cell, plugins)
        self._actors: list[Any] = []
        self._idle: deque = deque()
        self._waiting: deque = deque()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        outer: Future = Future()
        with self._lock:
            if not self._idle and len(self._actors) < self._size():
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
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the call's own exception
    if exc is None:
        outer.set_result(inner.result())
    elif isinstance(cause, HarnessError):  # a node refused the call: one line, no traceback
        outer.set_exception(HarnessError(str(cause)))
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
    nodes = _alive(ray)
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


def join_address(address: str | None) -> str | None:
    """The cluster a run joins: ``address`` (``--ray-address``), else ``RAY_ADDRESS``; ``None``
    (also for ``local`` or an empty value): a local Ray instance."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    return None if address == "local" else address


def address_in_use(address: str | None) -> str:
    """What run.json records: ``local``, or the cluster's ``host:port`` as Ray resolves it
    (from ``RAY_ADDRESS``, ``auto``, or 127.0.0.1 mapped to this machine's address)."""
    address = join_address(address)
    if address is None:
        return "local"
    import_ray()
    return _canonical(address)


def run_info(executor: str, address: str | None) -> dict[str, str]:
    """run.json's ``resolved`` entry for a Ray run: the address used (:func:`address_in_use`);
    nothing for the other executors."""
    return {"ray_address": address_in_use(address)} if executor == "ray" else {}


def _canonical(address: str) -> str:
    if "://" in address:  # a Ray Client address (ray://): Ray's own protocol, kept as given
        return address
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address) or address
    except Exception:  # no cluster for "auto", a malformed address: Ray's join says why
        return address


def _alive(ray: Any) -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node.get("Alive")]


def node_slots(node: dict[str, Any], threads: int, gpus_per_cell: float = 0.0) -> int:
    """How many cells a node runs at once: its CPUs over a cell's (``threads``), and with
    ``gpus_per_cell`` also its GPUs over that share."""
    resources = node.get("Resources") or {}
    slots = math.floor(resources.get("CPU", 0) / threads + 1e-9)
    if gpus_per_cell:
        slots = min(slots, math.floor(resources.get("GPU", 0) / gpus_per_cell + 1e-9))
    return max(0, slots)


def _too_big(nodes: list[dict[str, Any]], threads: int, gpus_per_cell: float) -> str:
    """Why no node can run a cell, in one line: what a cell asks for against the largest node
    (a Ray task never spans nodes, so a cluster's total says nothing)."""
    counts = [node.get("Resources") or {} for node in nodes]
    cpus = max((r.get("CPU", 0) for r in counts), default=0)
    gpus = max((r.get("GPU", 0) for r in counts), default=0)
    where = f"{len(nodes)} node(s)"
    if gpus_per_cell and gpus < gpus_per_cell:
        return (
            f"--gpus-per-cell {gpus_per_cell} needs GPUs in the Ray cluster; its largest node "
            f"has {gpus:g} ({where})"
        )
    if cpus < threads:
        return (
            f"a cell asks for {threads} CPUs (--threads {threads}) but the largest Ray node has "
            f"{cpus:g} ({where}, {sum(r.get('CPU', 0) for r in counts):g} CPUs in all): use "
            f"--threads {max(1, int(cpus))} or add a larger node"
        )
    return (
        f"a cell asks for {threads} CPU(s) and {gpus_per_cell:g} GPU but no Ray node has both "
        f"({where}; largest: {cpus:g} CPUs, {gpus:g} GPUs)"
    )


#: Ray's own knobs for how long a driver's join may take, set (unless the user has) for the
#: call only: one connection attempt (instead of 20), lasting at most ``CONNECT_TIMEOUT``.
_JOIN_ENV = {
    "RAY_gcs_server_port_wait_time_s": "1",
    "RAY_py_gcs_connect_timeout_s": str(math.ceil(CONNECT_TIMEOUT)),
    "RAY_gcs_rpc_server_connect_timeout_s": str(math.ceil(CONNECT_TIMEOUT / 3)),
}


@contextlib.contextmanager
def _bounded_join(address: str) -> Iterator[None]:
    """Joining ``address``, bounded and quiet: a one-line error at once when nothing answers
    at the head's address (a wrong port would otherwise take Ray about ten minutes of retries),
    Ray's connection limited to one attempt, and the warnings Ray's C++ core prints for every
    attempt held back (replayed if the join succeeds)."""
    target = _canonical(address)
    host, _, port = target.rpartition(":")
    if "://" not in target and host and port.isdigit():
        try:
            with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT):
                pass
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                why = f"no answer within {CONNECT_TIMEOUT:g} s"
            else:
                why = exc.strerror or str(exc) or type(exc).__name__
            seen = f" (Ray's address for it: {target})" if target != address else ""
            raise HarnessError(
                f"cannot join the Ray cluster at {address}{seen}: nothing answers there "
                f"({why}); check the head node's address and port (ray start --head --port)"
            ) from None
    saved = {name: os.environ.get(name) for name in _JOIN_ENV}
    for name, value in _JOIN_ENV.items():
        os.environ.setdefault(name, value)
    try:
        with _held_stderr():
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


@contextlib.contextmanager
def _held_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file in the block (Ray's C++ core writes there,
    past ``sys.stderr``); what it caught is written out afterwards unless the block raised."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2 to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                held.seek(0)
                text = held.read()
                if text:
                    os.write(2, text)


def _join_error(exc: BaseException) -> str:
    """Why a join failed, in words: Ray's last line, or what to set for token auth (which
    Ray says in a paragraph, in the exception's cause)."""
    texts, seen = [], exc
    while seen is not None and len(texts) < 10:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    if any("InvalidAuthToken" in text or "Unauthenticated" in text for text in texts):
        return (
            "the cluster uses Ray's token authentication and refused this driver's token "
            "(missing or wrong): set RAY_AUTH_MODE=token and the cluster's token "
            "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), as on its nodes"
        )
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
