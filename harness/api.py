"""The Python API: run a grid and get the per-cell table back as a pandas DataFrame.

    import harness
    cells = harness.run(tasks=["hello"], models=["rnn", "gru"], epochs=5)

The command line is a thin layer over :func:`execute_run`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.config import RunConfig, load_config
from harness.errors import HarnessError, unknown_name
from harness.lifecycle import Terminated as Terminated  # re-exported for the CLI
from harness.lifecycle import sigterm_as_interrupt as sigterm_as_interrupt
from harness.overrides import parse_assignments as parse_assignments  # for the CLI
from harness.overrides import recipe_from_text as recipe_from_text
from harness.plugins import Registry, load_plugins
from harness.report import LoadedRun, Reference, TaskMeta, rebuild, write_report
from harness.run_folder import FORMAT_VERSION, RunFolder
from harness.runner import (
    GridPlan,
    earlier_costs,
    estimate_cost,
    plan_grid,
    run_grid,
    timing_specs,
)
from harness.timing import run_timing

if TYPE_CHECKING:
    from harness.report.compare import Comparison


@dataclass
class RunResult:
    """A finished (or interrupted) run: where it lives and its tables."""

    out: Path
    cells: pd.DataFrame
    records: list[dict[str, Any]]
    skipped_plugins: list[str]

    @property
    def failed(self) -> pd.DataFrame:
        return self.cells[self.cells["status"].isin(["failed", "diverged"])]


def run(
    config: RunConfig | None = None, *, registry: Registry | None = None, **settings: Any
) -> pd.DataFrame:
    """Run a grid (``settings`` as in :class:`RunConfig`) and return the per-cell table."""
    if config is None:
        config = load_config(None, settings)
    return execute_run(config, registry=registry).cells


def default_tasks(registry: Registry) -> list[str]:
    """The tasks a run without ``tasks`` runs: every one but those that opted out (heavy ones)."""
    return sorted(name for name, task in registry.tasks.items() if task.in_default_grid)


def resolve_names(config: RunConfig, registry: Registry) -> tuple[list[str], list[str]]:
    """The task and model names to run; unknown names raise with the closest match."""
    tasks = config.tasks or default_tasks(registry)
    models = config.models or sorted(registry.models)
    for name in tasks:
        if name not in registry.tasks:
            raise unknown_name("task", name, registry.tasks)
    for name in models:
        if name not in registry.models:
            raise unknown_name("model", name, registry.models)
    for name in config.options:
        if name not in registry.tasks:
            raise unknown_name("task", name, registry.tasks)
    if not tasks and registry.tasks:
        raise HarnessError(
            "every installed task stays out of the default grid: name tasks with -t "
            "(see `harness list`)"
        )
    if not tasks or not models:
        raise HarnessError("no tasks or no models are installed (see `harness list`)")
    return list(dict.fromkeys(tasks)), list(dict.fromkeys(models))


def output_folder(config: RunConfig) -> RunFolder:
    """The run folder: ``--out``, the latest run for ``--resume``, or a new timestamped one."""
    base = Path(config.results_dir)
    if config.out:
        folder = RunFolder(config.out)
        if config.resume and not folder.run_file.is_file():  # a typo must not start a new run
            raise HarnessError(
                f"--resume: {config.out} holds no run to resume "
                "(leave out --resume to start a new run there)"
            )
        return RunFolder.create(config.out)
    if config.resume:
        latest = RunFolder.latest(base)
        if latest is None:
            raise HarnessError(f"--resume: no earlier run in {base}/ (give the folder with --out)")
        return RunFolder.create(latest.path)
    return RunFolder.create(base / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))


def environment(device: Any) -> dict[str, Any]:
    """The driver's environment; ``device`` is a name when each Ray node resolves its own."""
    import numpy
    import torch

    from harness import __version__
    from harness.device import device_name

    return {
        "harness": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device) if not isinstance(device, str) else "each Ray node's",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
    }


def task_meta(
    registry: Registry,
    name: str,
    options: dict[str, Any],
    seeds: list[int],
    recipe_overrides: dict[str, Any] | None = None,
) -> TaskMeta:
    """What the report needs of a task: ranking rule, where its validation split comes from,
    optimum and baselines (mean over seeds), and the recipe its cells train with."""
    from harness.task import with_validation

    task = registry.tasks[name].with_options(**options)
    recipe = dataclasses.replace(task.recipe, **(recipe_overrides or {}))
    optima, baselines = [], {}
    validation = ""
    for seed in seeds:
        data = task.make_data(seed)
        validation = (
            task.validation or "the task's own validation split"
            if data.val_inputs is not None
            else with_validation(data)[1]
        )
        optima.append(task.optimum(data))
        for baseline in task.baselines(data):
            entry = baselines.setdefault(
                baseline.name,
                {"name": baseline.name, "description": baseline.description, "rows": []},
            )
            entry["rows"].append(baseline.metrics)
    origin = registry.origin("task", name)
    return TaskMeta(
        description=task.description,
        primary_metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        validation=validation,
        input_kind=task.shape.input_kind,
        metric_descriptions=dict(task.metric_descriptions),
        metric_directions=dict(task.metric_directions),
        scored_steps=task.scored_steps,
        options=task.options(),
        recipe=dataclasses.asdict(recipe),
        plugin=f"{origin.package} {origin.version}",
        optimum=pd.DataFrame(optima).mean().to_dict() if any(optima) else {},
        baselines=[
            Reference(
                name=b["name"],
                description=b["description"],
                metrics=pd.DataFrame(b["rows"]).mean().to_dict(),
            )
            for b in baselines.values()
        ],
    )


def cell_device(config: RunConfig) -> Any:
    """The device cells are given: a ``torch.device`` resolved here, or with Ray the name
    (``auto``, ``cuda``), which each node resolves for its own hardware, not the driver's.
    With Ray not installed, a one-line error before anything starts."""
    from harness.device import DeviceError, check_device_name, resolve_device

    try:
        if config.executor == "ray":
            from harness.ray_executor import check_ray_installed

            check_ray_installed()
            check_device_name(config.device)
            return config.device
        return resolve_device(config.device)
    except DeviceError as exc:
        raise HarnessError(str(exc)) from None


def execute_run(
    config: RunConfig,
    *,
    registry: Registry | None = None,
    on_start: Callable[[int, int], None] = lambda total, done: None,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    on_notice: Callable[[str], None] = lambda text: None,
) -> RunResult:
    """Plan, run and report a grid. On Ctrl-C the finished cells are reported, then it re-raises."""
    device = cell_device(config)
    registry = registry or load_plugins()
    tasks, models = resolve_names(config, registry)
    seeds = config.seed_list
    try:
        for name, options in config.options.items():
            registry.tasks[name].with_options(**options)  # check options of every named task
        plan = plan_grid(
            registry,
            tasks,
            models,
            seeds,
            str(device),
            config.recipe_overrides(),
            config.options,
            select=config.select,
            patience=config.patience,
            params=config.params,
        )
        metas = {
            name: task_meta(
                registry, name, config.options.get(name, {}), seeds, config.recipe_overrides()
            )
            for name in tasks
        }
        for name, sizes in plan.sizes.items():  # with --params: the hidden size of each model
            metas[name] = dataclasses.replace(metas[name], params_target=config.params, sizes=sizes)
    except ValueError as exc:  # a bad task option or recipe override
        raise HarnessError(str(exc)) from None
    folder = output_folder(config)
    with folder.locked():  # one run writes to a folder at a time
        folder.sweep_stale_temp_files()
        skipped = [f"{b.origin}: {b.error}" for b in registry.broken]
        run_info = {
            "config": config.to_dict(),
            "resolved": {
                "tasks": tasks,
                "models": models,
                "seeds": seeds,
                "device": str(device),
                "workers": config.worker_count,
                "executor": config.executor,
            },
            "environment": environment(device),
            "plugins": [str(o) for o in registry.plugins],
            "broken_plugins": skipped,
            "tasks": {name: meta.to_dict() for name, meta in metas.items()},
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "status": "running",
        }
        folder.write_info(run_info)
        records: list[dict[str, Any]] = []
        timings: list[dict[str, Any]] = []

        try:
            if config.timing:
                timings = _timing_phase(plan, folder, config, registry, run_info, on_notice)
            earlier = earlier_costs(Path(config.results_dir))
            by_pair = {t["pair_id"]: t for t in timings}
            records = run_grid(
                plan,
                folder,
                **config.grid_settings(),
                registry=registry,
                on_start=on_start,
                on_done=on_done,
                on_notice=on_notice,
                cost=lambda cell: estimate_cost(cell, earlier, by_pair),
            )
            run_info["status"] = "finished"
        except KeyboardInterrupt:
            run_info["status"] = "interrupted"
            records = folder.read_records()
            raise
        finally:
            run_info["finished"] = dt.datetime.now().isoformat(timespec="seconds")
            folder.write_info(run_info)
            if records:
                info = {"format_version": FORMAT_VERSION, **run_info}
                write_report(LoadedRun(folder, info, records))
        cells = pd.read_parquet(folder.cells_parquet)
        return RunResult(out=folder.path, cells=cells, records=records, skipped_plugins=skipped)


def tune(
    config: RunConfig | None = None, *, registry: Registry | None = None, **settings: Any
) -> pd.DataFrame:
    """Tune every task x model pair (``settings`` as in :class:`RunConfig`, ``trials`` the
    budget per pair), re-run each pair's best configuration on the seeds and return the final
    cells' table; the trials are in ``<run>/trials.csv``. Needs optuna (``harness[tune]``)."""
    from harness.tuning import tune as run_tune

    return run_tune(config, registry=registry, **settings)


def execute_tune(config: RunConfig, **callbacks: Any) -> Any:
    """:func:`tune` with progress callbacks, as the command line runs it (see
    :func:`harness.tuning.execute_tune`); a one-line error when optuna is missing."""
    from harness.tuning import execute_tune as run_tune

    return run_tune(config, **callbacks)


def _timing_phase(
    plan: GridPlan,
    folder: RunFolder,
    config: RunConfig,
    registry: Registry,
    run_info: dict[str, Any],
    on_notice: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Time every pair's steps before any cell runs, so nothing else shares the cores."""
    import time

    from harness.executors import default_threads

    workers = min(config.worker_count, os.cpu_count() or 1, len(plan.cells) or 1)
    threads = config.threads or default_threads(config.executor, workers)
    specs = timing_specs(plan, threads)
    started = time.perf_counter()
    timings = run_timing(specs, folder, registry)
    run_info["timing"] = {
        "pairs": len(specs),
        "threads": threads,
        "seconds": time.perf_counter() - started,
        "failed": [t["pair_id"] for t in timings if t.get("error")],
    }
    for timing in timings:
        if timing.get("error"):
            on_notice(f"timing {timing['pair_id']} failed: {timing['error']}")
    return timings


def load_run(run_dir: str | Path) -> LoadedRun:
    """An earlier run folder read back: records, run.json, per-task metadata, leaderboards."""
    return LoadedRun.load(run_dir)


def report(run_dir: str | Path, html_only: bool = False) -> LoadedRun:
    """Rebuild the tables, leaderboard, plots and report.html of a run folder from its cell
    records (``html_only``: only report.html)."""
    return rebuild(run_dir, html_only=html_only)


def compare(
    run_a: str | Path, run_b: str | Path, threshold: float = 0.01, speed_threshold: float = 0.10
) -> Comparison:
    """Run B against run A (the baseline): quality and speed changes, cells added or removed,
    and the regressions (see :mod:`harness.report.compare`)."""
    from harness.report.compare import compare as compare_runs

    for name, value in (("--threshold", threshold), ("--speed-threshold", speed_threshold)):
        if not value >= 0:
            raise HarnessError(f"{name} must be zero or more (a fraction, e.g. 0.05), not {value}")
    a, b = LoadedRun.load(run_a), LoadedRun.load(run_b)
    return compare_runs(a, b, threshold=threshold, speed_threshold=speed_threshold)


def predict(run_dir: str | Path, task: str, model: str, seed: int, prefix: str, steps: int) -> str:
    """Continue ``prefix`` with a model saved by ``run(save_models=True)``."""
    from harness.predict import continue_prompt

    return continue_prompt(Path(run_dir), task, model, seed, prefix, steps)


def plot_benchmarks(json_path: str | Path, out: str | Path) -> list[Path]:
    """PNG plots of a saved pytest-benchmark JSON; returns the files written."""
    from harness.benchplot import plot_benchmarks as plot

    return plot(Path(json_path), Path(out))
