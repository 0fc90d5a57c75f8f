"""The grid: expand task x model x seed into cells, run the missing ones, write each at once.

Every finished cell is written atomically to ``cells/<cell_id>.json`` the moment it finishes,
so an interrupted run loses at most the cells in flight, and running again into the same folder
runs only the cells whose record is missing or was made under another config.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.grid.cells import Cell, base_record, execute_cells
from harness.grid.executors import make_executor
from harness.grid.protocol import CellLost, Executor
from harness.plugin_api.manager import Registry
from harness.plugin_api.task import Recipe
from harness.storage import status
from harness.storage.run_folder import BadFile, RunFolder, UnreadableFile
from harness.training.timing import TimingSpec

MAX_POOL_RESTARTS = 3
#: A cell whose worker process or node died this many times more is recorded as failed.
MAX_CELL_LOSSES = 3


@dataclass
class GridPlan:
    """The cells to run and the pairs skipped as not applicable, with the reason."""

    cells: list[Cell] = field(default_factory=list)
    not_applicable: list[tuple[Cell, str]] = field(default_factory=list)
    #: with ``params``: task -> model -> the hidden size chosen and the parameter count it gives
    sizes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: cells that fail before they run, with the one-line error naming the plugin at fault:
    #: their task's shape, data, optimum or baselines raised, or their model's ``limits`` did
    failed: list[tuple[Cell, str]] = field(default_factory=list)


def plan_grid(
    registry: Registry,
    tasks: Iterable[str],
    models: Iterable[str],
    seeds: Iterable[int],
    device: str,
    recipe_overrides: dict[str, Any],
    task_options: dict[str, dict[str, Any]],
    *,
    select: str = "best",
    patience: int | None = None,
    params: int | None = None,
    until: Callable[[str, bool], float | None] | None = None,
    model_options: dict[str, dict[str, Any]] | None = None,
    variant: Callable[[str, str], dict[str, Any]] | None = None,
) -> GridPlan:
    """Every cell of the grid. With ``params``, each model's hidden size is the one whose
    parameter count on that task is closest to ``params`` (a model that cannot be built keeps
    the recipe's and fails in its cells, with its own error). ``variant``: with a sweep, the
    swept values that apply to a task x model's cells (they go into the cells' ids)."""
    plan = GridPlan()
    for task_name in tasks:
        options = task_options.get(task_name, {})
        task = registry.tasks[task_name].with_options(**options)
        recipe = dataclasses.replace(task.recipe, **recipe_overrides)  # None is a value here
        task_plugin = _distribution(registry, "task", task_name)
        shape, broken = _guarded(registry, "task", task_name, "shape", getattr, task, "shape")
        for model_name in models:
            chosen = (model_options or {}).get(model_name, {})
            model = registry.models[model_name].with_options(**chosen)
            reason, error = None, broken
            if not error:
                reason, error = _guarded(
                    registry, "model", model_name, "limits()", model.cannot_serve, shape
                )
            model_plugin = _distribution(registry, "model", model_name)
            sized = recipe
            if params is not None and not reason and not error:
                sized = _sized(plan, task_name, model_name, model, shape, recipe, params)
            for seed in seeds:
                cell = Cell(
                    task_name,
                    model_name,
                    seed,
                    sized,
                    device,
                    dict(options),
                    task_plugin=task_plugin,
                    model_plugin=model_plugin,
                    select=select,
                    patience=patience,
                    until=until(task_name, task.higher_is_better) if until else None,
                    model_options=dict(chosen),
                    variant=variant(task_name, model_name) if variant else {},
                )
                if error:
                    plan.failed.append((cell, error))
                elif reason:
                    plan.not_applicable.append((cell, reason))
                else:
                    plan.cells.append(cell)
    return plan


def _guarded(
    registry: Registry, kind: str, name: str, what: str, call: Callable[..., Any], *args: Any
) -> tuple[Any, str]:
    """``(call(*args), "")``, or ``(None, error)`` when a plugin's code raised in ``what``: one
    line that names it, the plugin and its package, for the cells to fail with. A
    ``ValueError`` (a bad option value) is the user's: it goes on, naming the task or model."""
    try:
        return call(*args), ""
    except ValueError as exc:
        raise ValueError(f"{kind} {name!r}: {exc}") from None
    except Exception as exc:
        origin = registry.origins.get((kind, name))
        first = (str(exc).strip().splitlines() or [""])[0]
        where = f" [{kind} plugin {origin}]" if origin else ""
        return None, f"{what}: {type(exc).__name__}: {first}{where}"


def _distribution(registry: Registry, kind: str, name: str) -> str:
    """``"package version"`` of the plugin that registered ``name``; empty when unknown."""
    origin = registry.origins.get((kind, name))
    return f"{origin.package} {origin.version}" if origin else ""


def _sized(
    plan: GridPlan,
    task_name: str,
    model_name: str,
    model: Any,
    shape: Any,
    recipe: Recipe,
    params: int,
) -> Recipe:
    from harness.training.sizing import hidden_for_params

    try:
        hidden, count = hidden_for_params(model, shape, params, recipe.num_layers)
    except Exception:  # a model that cannot be built fails in its own cells
        return recipe
    plan.sizes.setdefault(task_name, {})[model_name] = {"hidden_size": hidden, "params": count}
    return dataclasses.replace(recipe, hidden_size=hidden)


def timing_specs(plan: GridPlan, threads: int) -> list[TimingSpec]:
    """One timing per task x model pair of the plan (seeds share it), in plan order."""
    specs: dict[str, TimingSpec] = {}
    for cell in plan.cells:
        spec = TimingSpec(
            cell.task,
            cell.model,
            cell.recipe,
            cell.device,
            threads,
            cell.task_options,
            cell.model_options,
            variant=cell.variant_slug,
        )
        specs.setdefault(spec.pair_id, spec)
    return list(specs.values())


#: Seconds per epoch assumed for a cell with neither an earlier record nor a timing.
ROUGH_EPOCH_SECONDS = 0.05
#: How many of the newest earlier runs are read for the cost of a cell.
EARLIER_RUNS = 20


def earlier_costs(results_dir: Path | None) -> dict[str, float]:
    """Wall seconds of finished cells in the newest earlier runs, keyed by config hash."""
    costs: dict[str, list[float]] = {}
    if results_dir is None or not results_dir.is_dir():
        return {}
    runs = sorted((p for p in results_dir.iterdir() if (p / "cells").is_dir()), reverse=True)
    for run in runs[:EARLIER_RUNS]:
        for record in RunFolder(run).read_records():
            if record.get("status") == "ok" and record.get("wall_seconds"):
                costs.setdefault(record["config_hash"], []).append(record["wall_seconds"])
    return {key: statistics.median(values) for key, values in costs.items()}


def estimate_cost(
    cell: Cell, earlier: dict[str, float], timings: dict[str, dict[str, Any]]
) -> float:
    """Seconds a cell is expected to take: an earlier record of the same config, else its
    pair's timed training step times the steps it will take (plus a quarter for evaluation),
    else a rough guess from the epochs."""
    known = earlier.get(cell.config_hash())
    if known is not None:
        return known
    timing = timings.get(f"{cell.task}__{cell.model}") or {}
    ms, batches = timing.get("train_ms_per_batch"), timing.get("batches_per_epoch")
    if ms and batches:
        return 1.25 * cell.recipe.epochs * batches * ms / 1000
    return cell.recipe.epochs * ROUGH_EPOCH_SECONDS


def load_record(folder: RunFolder, cell: Cell) -> dict[str, Any] | None:
    """A finished record of ``cell`` made under the same config, or ``None`` (also when its
    file cannot be read: the cell is run again)."""
    try:
        record = folder.read_record(cell.cell_id)
    except UnreadableFile:
        return None
    if not record:
        return None
    # "auto" (with Ray, resolved on each node): compared under the device the record ran on
    ran_on = record.get("device") if cell.device == "auto" else None
    ran_on = ran_on if isinstance(ran_on, str) and ran_on != "auto" else None
    return record if record.get("config_hash") == cell.config_hash(ran_on) else None


def _unreadable(folder: RunFolder, cell: Cell) -> BadFile | None:
    try:
        folder.read_record(cell.cell_id)
    except UnreadableFile as exc:
        return exc.bad
    return None


def run_grid(
    plan: GridPlan,
    out: RunFolder,
    *,
    workers: int | None = 1,
    save_models: bool = False,
    threads: int | None = None,
    executor: str = "pool",
    ray_address: str | None = None,
    gpus_per_cell: float = 0.0,
    registry: Registry | None = None,
    on_start: Callable[[int, int], None] = lambda total, done: None,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    on_notice: Callable[[str], None] = lambda text: None,
    cost: Callable[[Cell], float] | None = None,
    seeds_together: bool = False,
) -> list[dict[str, Any]]:
    """Run the plan's missing cells into ``out`` and return every cell's record.

    ``executor`` picks where cells run (see :func:`harness.grid.executors.make_executor`).
    ``workers`` (pool) is capped at the pending cells and the CPU cores (more only compete for
    the same cores and memory), with a notice; ``None`` means one per core, capped silently.
    ``registry`` is used only in-process; other processes and nodes discover plugins through
    entry points themselves. A worker killed mid-run breaks a pool: the cells it held are
    resubmitted on a fresh pool. A cell whose Ray worker or node died is resubmitted. With
    ``cost`` (a cell's expected seconds) cells are handed out longest first; records come back
    in plan order either way. With ``seeds_together`` the seeds of a pair whose model claims
    ``trains_across_seeds`` run as one unit, trained in one batched computation (needs
    ``registry``).
    """
    records: dict[str, dict[str, Any]] = {}
    for cell, error in plan.failed:  # an earlier record made under the same config is kept
        done = load_record(out, cell)
        records[cell.cell_id] = done or failed_record(cell, error)
        if done is None:
            out.set_aside(cell.cell_id)
            out.write_record(records[cell.cell_id])
    for cell, reason in plan.not_applicable:
        record = dict(base_record(cell), status=status.NOT_APPLICABLE, error=reason, curve=[])
        records[cell.cell_id] = record
        if load_record(out, cell) is None:
            out.set_aside(cell.cell_id)
            out.write_record(record)
    pending, changed, unreadable = [], 0, []
    for cell in plan.cells:
        done = load_record(out, cell)
        if done is None and out.cell_file(cell.cell_id).exists():
            bad = _unreadable(out, cell)
            if bad is None:
                changed += 1
            else:
                unreadable.append(bad)
        if done is not None and (not save_models or done.get("model_file")):
            records[cell.cell_id] = done
        else:
            pending.append(cell)
    if changed:
        on_notice(f"{changed} cell(s) in {out.path} were made under other settings: rerunning them")
    if unreadable:
        for bad in unreadable:
            moved = out.set_aside(bad.path.stem)
            if moved is not None:
                on_notice(f"{bad.path} is a folder: renamed to {moved.name}")
        on_notice(
            f"{len(unreadable)} cell file(s) in {out.path} are unreadable, rerunning them: "
            + ", ".join(map(str, unreadable))
        )
    # Only a pool has workers: local runs in this process; Ray sizes itself from the cluster.
    workers = _usable_workers(workers, len(pending), on_notice) if executor == "pool" else 1

    feed = GridFeed(out, records, on_done)

    def start() -> Executor:
        return make_executor(
            executor,
            workers=min(workers, max(1, len(feed.queue))),
            threads=threads,
            ray_address=ray_address,
            gpus_per_cell=gpus_per_cell,
        )

    units = group_seeds(pending, registry) if seeds_together and registry else None
    units = units or [[cell] for cell in pending]
    if cost is not None:
        units.sort(key=lambda unit: -sum(cost(cell) for cell in unit))
    feed.queue.extend(units)
    # started before the progress shows: a cluster that cannot be joined is one line, no bar
    started = start() if units else None
    try:
        on_start(len(plan.cells), len(plan.cells) - len(pending))
    except BaseException:  # Ctrl-C here: the executor is not drive's yet
        if started is not None:
            started.shutdown(cancel=True)
        raise
    if started is not None:
        drive(feed, start, registry=registry, save_models=save_models, executor=started)
    order = [c.cell_id for c, _ in plan.not_applicable + plan.failed]
    order += [c.cell_id for c in plan.cells]
    return [records[cell_id] for cell_id in order]


Unit = list[Cell]


class Feed(Protocol):
    """Where :func:`drive` gets its units of work and what it tells of them: the grid's queue,
    or a tune's studies (which ask for new trials as earlier ones are told)."""

    def take(self, room: int) -> list[Unit]:
        """Up to ``room`` units ready to run now (none while waiting on results)."""

    def retry(self, unit: Unit) -> None:
        """Put back a unit whose process or pool died: it runs again, first."""

    def done(self, unit: Unit, records: list[dict[str, Any]]) -> None:
        """A unit finished: its records (a cell's own failure is a record too)."""

    def give_up(self, unit: Unit, error: str) -> None:
        """A unit that cannot be run: record its cells as failed with ``error``."""


def failed_record(cell: Cell, error: str) -> dict[str, Any]:
    """The record of a cell the runner gave up on (its worker or node died repeatedly)."""
    return dict(base_record(cell), status=status.FAILED, error=error, curve=[])


class GridFeed:
    """The grid's units, longest first: each record written the moment it comes back."""

    def __init__(
        self,
        out: RunFolder,
        records: dict[str, dict[str, Any]],
        on_done: Callable[[dict[str, Any]], None],
    ) -> None:
        self.out, self.records, self.on_done = out, records, on_done
        self.queue: deque[Unit] = deque()

    def take(self, room: int) -> list[Unit]:
        return [self.queue.popleft() for _ in range(min(room, len(self.queue)))]

    def retry(self, unit: Unit) -> None:
        self.queue.appendleft(unit)

    def done(self, unit: Unit, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.out.write_record(record)
            record.pop("state_dict", None)
            self.records[record["cell_id"]] = record
            self.on_done(record)

    def give_up(self, unit: Unit, error: str) -> None:
        self.done(unit, [failed_record(cell, error) for cell in unit])


def drive(
    feed: Feed,
    start: Callable[[], Executor],
    *,
    registry: Registry | None = None,
    save_models: bool = False,
    executor: Executor | None = None,
) -> None:
    """Run every unit ``feed`` gives on executors from ``start``, keeping each one full: the
    one place that handles a lost unit and a broken pool, for `harness run` and `harness tune`.

    A unit whose process or node died (:class:`CellLost`) goes back to the feed, up to
    ``MAX_CELL_LOSSES`` times, while the other units run on. A worker killed mid-run breaks a
    process pool: the units it held go back, and a fresh pool takes over, up to
    ``MAX_POOL_RESTARTS`` times; after that every unit left is given up as failed.
    ``executor``: one already started (a tune sizes its batches by its capacity).
    """
    executor = executor or start()
    in_flight: dict[Future, Unit] = {}
    losses: Counter[str] = Counter()
    restarts = 0
    try:
        while True:
            room = executor.capacity - len(in_flight)
            for unit in feed.take(room) if room > 0 else []:
                args = (unit, registry if executor.in_process else None, save_models)
                in_flight[executor.submit(execute_cells, *args)] = unit
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                unit = in_flight.pop(future)
                try:
                    records = future.result()
                except BrokenProcessPool:
                    broken = True
                    feed.retry(unit)
                    continue
                except CellLost as exc:
                    lost = unit[0].cell_id
                    losses[lost] += 1
                    if losses[lost] > MAX_CELL_LOSSES:
                        feed.give_up(unit, f"lost {losses[lost]} times: {exc}")
                    else:
                        feed.retry(unit)
                    continue
                feed.done(unit, records)
            if not broken:
                continue
            # a pool worker died: the pool is gone, and so are the units it still held
            for unit in reversed(list(in_flight.values())):
                feed.retry(unit)
            in_flight.clear()
            executor.shutdown(cancel=True)
            restarts += 1
            if restarts > MAX_POOL_RESTARTS:
                while units := feed.take(1):
                    feed.give_up(units[0], "worker process died repeatedly while running this cell")
                return
            executor = start()
    except BaseException:
        executor.shutdown(cancel=True)
        raise
    executor.shutdown()


def _usable_workers(requested: int | None, pending: int, on_notice: Callable[[str], None]) -> int:
    cores = os.cpu_count() or 1
    usable = max(1, min(requested or cores, cores, pending))
    if requested is not None and usable < requested:
        on_notice(
            f"--workers {requested}: using {usable} ({pending} cell(s) to run, {cores} CPU cores)"
        )
    return usable


def group_seeds(cells: list[Cell], registry: Registry) -> list[list[Cell]]:
    """Units of work: the seeds of a pair together where its model can train them so (and
    the recipe does not carry state across batches), every other cell alone."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        model = registry.models.get(cell.model)
        if model is not None and model.trains_across_seeds and not cell.recipe.carry_state:
            key = cell.pair_key()
        else:
            key = cell.cell_id
        groups.setdefault(key, []).append(cell)
    return list(groups.values())
