"""One pipeline for every command that fills a run folder: **plan -> execute -> finish**.

``harness run``, ``harness tune`` (and sweeps) share it::

    session = Session.plan(config)           # names, device, options, cells, task metadata
    with session.open() as live:             # folder lock, run.json "running"
        records = live.run_cells(session.plan_)  # the grid runner: restarts in one place
    # on leaving: run.json "finished" / "interrupted" / "failed", the report written

Everything a command adds (tuning's studies) happens inside ``open()``; everything that can be
refused (an unknown name, a bad option) is refused in :meth:`Session.plan`, before a folder
exists. Once the folder exists every way out of the block leaves run.json saying how the run
ended, and the finished cells reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, unknown_name
from harness.grid.runner import GridPlan, earlier_costs, estimate_cost, plan_grid, run_grid
from harness.plugin_api.manager import Registry, load_plugins
from harness.report import LoadedRun, Reference, TaskMeta, write_report
from harness.settings.config import RunConfig
from harness.storage import status
from harness.storage.run_folder import FORMAT_VERSION, RunFolder


def default_tasks(registry: Registry) -> list[str]:
    """The tasks a run without ``tasks`` runs: every one but those that opted out (heavy ones)."""
    return sorted(name for name, task in registry.tasks.items() if task.in_default_grid)


def suite_tasks(registry: Registry, tags: list[str]) -> list[str]:
    """The tasks carrying any of ``tags`` (``--suite memory``); an unknown tag is an error that
    lists the tags there are."""
    known = sorted({tag for task in registry.tasks.values() for tag in task.tags})
    for tag in tags:
        if tag not in known:
            there = ", ".join(known) or "none"
            raise HarnessError(f"no task has the tag {tag!r} (tags: {there}; see `harness list`)")
    return sorted(n for n, task in registry.tasks.items() if set(task.tags) & set(tags))


def split_options(
    options: dict[str, dict[str, Any]], registry: Registry
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``-o NAME.FIELD=VALUE`` settings split into the tasks' and the models' options."""
    tasks = {name: values for name, values in options.items() if name in registry.tasks}
    models = {name: values for name, values in options.items() if name in registry.models}
    return tasks, models


def resolve_names(config: RunConfig, registry: Registry) -> tuple[list[str], list[str]]:
    """The task and model names to run; unknown names raise with the closest match."""
    tasks = list(config.tasks or [])
    if config.suite:
        tasks += suite_tasks(registry, config.suite)
    tasks = tasks or default_tasks(registry)
    models = config.models or sorted(n for n, m in registry.models.items() if m.in_default_grid)
    for name in tasks:
        if name not in registry.tasks:
            raise unknown_name("task", name, registry.tasks)
    for name in tasks + models:
        hint = registry.install_hint(name)
        if hint and name not in registry.tasks and name not in registry.models:
            raise HarnessError(hint)
    for name in models:
        if name not in registry.models:
            raise unknown_name("model", name, registry.models)
    for name in config.until_task:
        if name not in registry.tasks:
            raise unknown_name("task", name, registry.tasks)
    for name in config.options:  # -o NAME.FIELD=VALUE: NAME is a task or a model
        if name in registry.tasks and name in registry.models:
            raise HarnessError(
                f"-o {name}.FIELD: {name!r} is both a task and a model; their options cannot "
                "be told apart"
            )
        if name not in registry.tasks and name not in registry.models:
            raise unknown_name("task or model", name, {**registry.tasks, **registry.models})
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
    import pandas as pd
    import torch

    from harness.training.device import device_name
    from harness.version import __version__

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
    import pandas as pd

    from harness.plugin_api.task import with_validation

    task = registry.tasks[name].with_options(**options)
    recipe = dataclasses.replace(task.recipe, **(recipe_overrides or {}))
    origin = registry.origin("task", name)
    optima, baselines = [], {}
    validation, error = "", ""
    try:
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
    except Exception as exc:  # the plugin's fault: its cells fail with it, the others run
        first = (str(exc).splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first} [task plugin {origin}]"
        optima, baselines = [], {}
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
        error=error,
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
    from harness.training.device import DeviceError, check_device_name, resolve_device

    try:
        if config.executor == "ray":
            from harness.grid.ray_executor import check_ray_installed

            check_ray_installed()
            check_device_name(config.device)
            return config.device
        return resolve_device(config.device)
    except DeviceError as exc:
        raise HarnessError(str(exc)) from None


@dataclass
class Session:
    """A planned run folder's work, and (inside :meth:`open`) its life on disk."""

    config: RunConfig
    registry: Registry
    device: Any
    tasks: list[str]
    models: list[str]
    seeds: list[int]
    grid: GridPlan
    metas: dict[str, TaskMeta]
    command: str = "run"
    folder: RunFolder | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: the records the report is written from when the session ends
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def plan(
        cls,
        config: RunConfig,
        *,
        registry: Registry | None = None,
        command: str = "run",
        plan_seeds: list[int] | None = None,
    ) -> Session:
        """Resolve names and device, check every option, plan the cells and read each task's
        metadata; a bad input is a one-line :class:`HarnessError` and no folder is made.
        ``plan_seeds``: the seeds the planned cells train on (a tune's trial seed), when not
        the run's own."""
        device = cell_device(config)
        registry = registry or load_plugins()
        tasks, models = resolve_names(config, registry)
        seeds = config.seed_list
        overrides = config.recipe_overrides()
        try:
            task_options, model_options = split_options(config.options, registry)
            for name, options in task_options.items():
                registry.tasks[name].with_options(**options)  # check options of every named task
            for name, options in model_options.items():
                registry.models[name].with_options(**options)  # and of every named model
            grid = plan_grid(
                registry,
                tasks,
                models,
                plan_seeds or seeds,
                str(device),
                overrides,
                task_options,
                select=config.select,
                patience=config.patience,
                params=config.params,
                until=config.until_for,
                model_options=model_options,
            )
            metas = {
                name: task_meta(registry, name, config.options.get(name, {}), seeds, overrides)
                for name in tasks
            }
        except ValueError as exc:  # a bad task option or recipe override
            raise HarnessError(str(exc)) from None
        for name, sizes in grid.sizes.items():  # with --params: the hidden size of each model
            metas[name] = dataclasses.replace(metas[name], params_target=config.params, sizes=sizes)
        return cls(config, registry, device, tasks, models, seeds, grid, metas, command)

    @contextlib.contextmanager
    def open(self, **sections: Any) -> Iterator[Session]:
        """Take the folder (lock, stale temporary files swept), write run.json as "running"
        with ``sections`` added, and on the way out record how the run ended and write the
        report from :attr:`records` (on Ctrl-C/SIGTERM: every record on disk)."""
        folder = self.folder = output_folder(self.config)
        with folder.locked():  # one run writes to a folder at a time
            folder.sweep_stale_temp_files()
            self.info = self._run_info(sections)
            folder.write_info(self.info)
            try:
                yield self
                self.info["status"] = status.FINISHED
            except KeyboardInterrupt:
                self.info["status"] = status.INTERRUPTED
                self.records = self.records or folder.read_records()
                raise
            except BaseException as exc:
                self.info["status"] = status.RUN_FAILED
                self.info["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                raise
            finally:
                self.info["finished"] = dt.datetime.now().isoformat(timespec="seconds")
                self.info["tasks"] = {name: meta.to_dict() for name, meta in self.metas.items()}
                folder.write_info(self.info)
                if self.records:
                    info = {"format_version": FORMAT_VERSION, **self.info}
                    write_report(LoadedRun(folder, info, self.records))

    def _run_info(self, sections: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        resolved = {
            "tasks": self.tasks,
            "models": self.models,
            "seeds": self.seeds,
            "device": str(self.device),
            "workers": config.worker_count,
            "executor": config.executor,
            "model_options": {
                name: self.registry.models[name]
                .with_options(**config.options.get(name, {}))
                .option_values()
                for name in self.models
                if self.registry.models[name].options is not None
            },
            **sections.pop("resolved", {}),
        }
        info: dict[str, Any] = {"command": self.command} if self.command != "run" else {}
        info.update(
            config=config.to_dict(),
            resolved=resolved,
            environment=environment(self.device),
            plugins=[str(o) for o in self.registry.plugins],
            broken_plugins=self.broken_plugins,
            tasks={name: meta.to_dict() for name, meta in self.metas.items()},
            **sections,
            started=dt.datetime.now().isoformat(timespec="seconds"),
            status=status.RUNNING,
        )
        return info

    @property
    def broken_plugins(self) -> list[str]:
        return [f"{b.origin}: {b.error}" for b in self.registry.broken]

    def write_info(self) -> None:
        """Write run.json now (e.g. once the timing phase has added its section)."""
        assert self.folder is not None, "open() the session first"
        self.folder.write_info(self.info)

    def run_cells(
        self,
        grid: GridPlan,
        *,
        cost: Callable[[Any], float] | None = None,
        **callbacks: Any,
    ) -> list[dict[str, Any]]:
        """Run ``grid``'s missing cells into the folder on the configured executor (the grid
        runner: its restart and lost-cell logic is the only one) and keep their records for
        the report."""
        assert self.folder is not None, "open() the session first"
        self.records = run_grid(
            grid,
            self.folder,
            **self.config.grid_settings(),
            registry=self.registry,
            cost=cost,
            **callbacks,
        )
        return self.records

    def timing_phase(self, on_notice: Callable[[str], None]) -> list[dict[str, Any]]:
        """Time every pair's steps before any cell runs, so nothing else shares the cores; the
        phase's summary goes into run.json's ``timing``."""
        from harness.grid.executors import default_threads
        from harness.grid.runner import timing_specs
        from harness.training.timing import run_timing

        assert self.folder is not None, "open() the session first"
        config = self.config
        workers = min(config.worker_count, os.cpu_count() or 1, len(self.grid.cells) or 1)
        threads = config.threads or default_threads(config.executor, workers)
        specs = timing_specs(self.grid, threads)
        started = time.perf_counter()
        timings = run_timing(specs, self.folder, self.registry)
        self.info["timing"] = {
            "pairs": len(specs),
            "threads": threads,
            "seconds": time.perf_counter() - started,
            "failed": [t["pair_id"] for t in timings if t.get("error")],
        }
        for timing in timings:
            if timing.get("error"):
                on_notice(f"timing {timing['pair_id']} failed: {timing['error']}")
        return timings


def run_session(
    config: RunConfig,
    *,
    registry: Registry | None = None,
    on_start: Callable[[int, int], None] = lambda total, done: None,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    on_notice: Callable[[str], None] = lambda text: None,
) -> Session:
    """`harness run`: plan, time the pairs (unless ``--no-timing``), run the cells, report."""
    session = Session.plan(config, registry=registry)
    for name, meta in session.metas.items():
        if meta.error:
            on_notice(f"task {name}: its data cannot be made, so its cells fail: {meta.error}")
    with session.open():
        timings = session.timing_phase(on_notice) if config.timing else []
        session.write_info()
        earlier = earlier_costs(Path(config.results_dir))
        by_pair = {t["pair_id"]: t for t in timings}
        session.run_cells(
            session.grid,
            cost=lambda cell: estimate_cost(cell, earlier, by_pair),
            on_start=on_start,
            on_done=on_done,
            on_notice=on_notice,
        )
    return session
