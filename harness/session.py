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
import copy
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
from harness.grid.cells import variant_label
from harness.grid.ray_executor import run_info as ray_run_info
from harness.grid.runner import GridPlan, earlier_costs, estimate_cost, plan_grid, run_grid
from harness.loggers.fanout import Trackers, check_loggers
from harness.plugin_api.manager import Registry, load_plugins
from harness.report import LoadedRun, Reference, TaskMeta, write_report
from harness.settings.config import RunConfig
from harness.settings.sweep import cell_variant, split_variant, variants
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
    reference = config.speed_reference
    if reference is not None and reference not in models:
        if reference not in registry.models:
            raise unknown_name("model", reference, registry.models)
        raise HarnessError(
            f"speed reference {reference!r} is not among the run's models (add it with -m)"
        )
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
    validation, error, input_kind, step = "", "", "", "shape"
    optimum: dict[str, Any] = {}
    references: list[Reference] = []
    try:
        input_kind = task.shape.input_kind
        for seed in seeds:
            step = f"make_data({seed})"
            data = task.make_data(seed)
            validation = (
                task.validation or "the task's own validation split"
                if data.val_inputs is not None
                else with_validation(data)[1]
            )
            step = "optimum()"
            optima.append(task.optimum(data))
            step = "baselines()"
            for baseline in task.baselines(data):
                entry = baselines.setdefault(
                    baseline.name,
                    {"name": baseline.name, "description": baseline.description, "rows": []},
                )
                entry["rows"].append(baseline.metrics)
        step = "optimum()"
        optimum = pd.DataFrame(optima).mean().to_dict() if any(optima) else {}
        step = "baselines()"
        references = [
            Reference(
                name=b["name"],
                description=b["description"],
                metrics=pd.DataFrame(b["rows"]).mean().to_dict(),
            )
            for b in baselines.values()
        ]
    except Exception as exc:  # the plugin's fault: its cells fail with it, the others run
        first = (str(exc).strip().splitlines() or [""])[0]
        error = f"{step}: {type(exc).__name__}: {first} [task plugin {origin}]"
        optimum, references = {}, []
    return TaskMeta(
        description=task.description,
        primary_metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        validation=validation,
        input_kind=input_kind,
        metric_descriptions=dict(task.metric_descriptions),
        metric_directions=dict(task.metric_directions),
        scored_steps=task.scored_steps,
        options=task.options(),
        recipe=dataclasses.asdict(recipe),
        plugin=f"{origin.package} {origin.version}",
        error=error,
        optimum=optimum,
        baselines=references,
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


def sweep_axes(
    config: RunConfig, registry: Registry, tasks: list[str], models: list[str], command: str
) -> list[Any]:
    """The run's swept names, checked: each names a task or model of this run, a recipe field
    set no other way, or params without a fixed hidden size (one line otherwise)."""
    from harness.settings.sweep import axes

    if not config.sweep:
        return []
    if command != "run":
        raise HarnessError(f"harness {command} does not take a sweep; run the sweep with run")
    found = [_typed_axis(a, registry) for a in axes(config.sweep, registry.tasks, registry.models)]
    fixed = config.recipe_overrides()
    for axis in found:
        if axis.kind == "task" and axis.target not in tasks:
            raise HarnessError(f"sweep {axis.name}: task {axis.target!r} is not in this run")
        if axis.kind == "model" and axis.target not in models:
            raise HarnessError(f"sweep {axis.name}: model {axis.target!r} is not in this run")
        if axis.kind == "recipe" and axis.name in fixed:
            raise HarnessError(f"sweep {axis.name}: it is also set to {fixed[axis.name]!r}; "
                               "give it one way")  # fmt: skip
        set_by_option = config.options.get(axis.target or "", {})
        if axis.kind in ("task", "model") and axis.field in set_by_option:
            raise HarnessError(f"sweep {axis.name}: it is also set with -o {axis.name}=...")
    names = {a.name for a in found}
    if "params" in names and ("hidden_size" in names or "hidden_size" in fixed):
        raise HarnessError("sweep params sets the hidden size: do not also set hidden_size")
    if "hidden_size" in names and config.params is not None:
        raise HarnessError("sweep hidden_size: params is set too (it sets the hidden size)")
    if "params" in names and config.params is not None:
        raise HarnessError("sweep params: params is set too; give it one way")
    return found


def _typed_axis(axis: Any, registry: Registry) -> Any:
    """A swept plugin option's values as the plugin's options type them (``"64"`` -> 64), so
    records, tables and curves hold numbers; a value the plugin refuses is its one line."""
    if axis.kind == "task":
        typed = [
            getattr(registry.tasks[axis.target].with_options(**{axis.field: v}), axis.field)
            for v in axis.values
        ]
    elif axis.kind == "model":
        typed = [
            getattr(registry.models[axis.target].with_options(**{axis.field: v}).options,
                    axis.field)  # fmt: skip
            for v in axis.values
        ]
    else:
        return axis
    return dataclasses.replace(axis, values=tuple(typed))


def _merged(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict:
    merged = {name: dict(values) for name, values in base.items()}
    for name, values in extra.items():
        merged.setdefault(name, {}).update(values)
    return merged


def _merge_plan(grid: GridPlan, part: GridPlan) -> None:
    """``part``'s cells into ``grid``, each once (a cell a swept name does not apply to is
    planned by every variant, under one id)."""
    seen = {c.cell_id for c in grid.cells} | {c.cell_id for c, _ in grid.not_applicable}
    seen |= {c.cell_id for c, _ in grid.failed}
    grid.cells += [c for c in part.cells if c.cell_id not in seen]
    grid.not_applicable += [(c, r) for c, r in part.not_applicable if c.cell_id not in seen]
    grid.failed += [(c, r) for c, r in part.failed if c.cell_id not in seen]
    for task, sizes in part.sizes.items():
        grid.sizes.setdefault(task, {}).update(sizes)


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
    #: with ``--sweep``: the swept names and values, and for a swept task option the task's
    #: metadata (baselines, optimum) per value, by the option's part of the variant label
    sweep: list[dict[str, Any]] = field(default_factory=list)
    variant_metas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: the trackers the run logs to (``--log``), open inside :meth:`open`
    trackers: Trackers | None = None
    #: where a tracker's one-line warning goes (the command line shows notices)
    on_notice: Callable[[str], None] = field(default=lambda text: None)

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
        check_loggers(config.log, registry)  # a missing tracker package: one line, no folder
        seeds = config.seed_list
        overrides = config.recipe_overrides()
        try:
            task_options, model_options = split_options(config.options, registry)
            for name, options in task_options.items():
                registry.tasks[name].with_options(**options)  # check options of every named task
            for name, options in model_options.items():
                registry.models[name].with_options(**options)  # and of every named model
            found = sweep_axes(config, registry, tasks, models, command)
            grid = GridPlan()
            variant_metas: dict[str, dict[str, dict[str, Any]]] = {}
            for variant in variants(found):  # without a sweep: the one plain grid
                recipe_v, task_v, model_v, params_v = split_variant(found, variant)
                t_opts = _merged(task_options, task_v)
                m_opts = _merged(model_options, model_v)
                for name in task_v:  # each swept value checked by the plugin's own options
                    registry.tasks[name].with_options(**t_opts[name])
                for name in model_v:
                    registry.models[name].with_options(**m_opts[name])
                part = plan_grid(
                    registry,
                    tasks,
                    models,
                    plan_seeds or seeds,
                    str(device),
                    {**overrides, **recipe_v},
                    t_opts,
                    select=config.select,
                    patience=config.patience,
                    params=params_v if params_v is not None else config.params,
                    until=config.until_for,
                    model_options=m_opts,
                    variant=lambda t, m, v=variant: cell_variant(found, v, t, m),
                )
                _merge_plan(grid, part)
                for name in task_v:  # a swept task option: the task's references per value
                    label = variant_label({k: v for k, v in variant.items()
                                           if k.startswith(f"{name}.")})  # fmt: skip
                    if label not in variant_metas.setdefault(name, {}):
                        meta = task_meta(registry, name, t_opts[name], seeds, overrides)
                        variant_metas[name][label] = meta.to_dict()
            metas = {
                name: task_meta(registry, name, config.options.get(name, {}), seeds, overrides)
                for name in tasks
            }
        except ValueError as exc:  # a bad task option or recipe override
            raise HarnessError(str(exc)) from None
        broken = {name: meta.error for name, meta in metas.items() if meta.error}
        if broken:  # its references cannot be computed: the task's cells fail with why
            grid.failed += [(cell, broken[cell.task]) for cell in grid.cells if cell.task in broken]
            grid.cells = [cell for cell in grid.cells if cell.task not in broken]
        for name, sizes in grid.sizes.items():  # with --params: the hidden size of each model
            metas[name] = dataclasses.replace(metas[name], params_target=config.params, sizes=sizes)
        session = cls(config, registry, device, tasks, models, seeds, grid, metas, command)
        session.sweep = [{"name": a.name, "values": list(a.values), "kind": a.kind}
                         for a in found]  # fmt: skip
        session.variant_metas = variant_metas
        return session

    @contextlib.contextmanager
    def open(self, **sections: Any) -> Iterator[Session]:
        """Take the folder (lock, stale temporary files swept), write run.json as "running"
        with ``sections`` added, and on the way out record how the run ended and write the
        report from :attr:`records` (on Ctrl-C/SIGTERM: every record on disk)."""
        folder = self.folder = output_folder(self.config)
        with folder.locked():  # one run writes to a folder at a time
            folder.sweep_stale_temp_files()
            resumed = folder.run_file.is_file()
            self.info = self._run_info(sections)
            folder.write_info(self.info)
            try:
                self._open_trackers(folder, resumed)
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
                self._finish(folder)

    def _open_trackers(self, folder: RunFolder, resumed: bool) -> None:
        """Open the run's loggers (``--log``) now that run.json is written; run.json then
        says where each logs."""
        if not self.config.log:
            return
        self.trackers = Trackers.open(
            self.config.log,
            self.registry,
            folder,
            copy.deepcopy(self.info),
            resumed=resumed,
            log_dir=self.config.log_dir,
            warn=self.on_notice,
        )
        self.info["loggers"] = self.trackers.summary
        folder.write_info(self.info)

    def _finish(self, folder: RunFolder) -> None:
        """However the run ended: run.json says how, the report is written from the records,
        and last the trackers get the finished folder (the report and plots as artifacts)."""
        self.info["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        self.info["tasks"] = {name: meta.to_dict() for name, meta in self.metas.items()}
        folder.write_info(self.info)
        try:
            if self.records:
                info = {"format_version": FORMAT_VERSION, **self.info}
                write_report(LoadedRun(folder, info, self.records))
        finally:
            if self.trackers is not None:
                self.trackers.finish(self.info["status"], folder.report_files())
                folder.write_info(self.info)  # with a tracker's failure to finish, if any

    def _run_info(self, sections: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        resolved = {
            "tasks": self.tasks,
            "models": self.models,
            "seeds": self.seeds,
            "device": str(self.device),
            "workers": config.worker_count,
            "executor": config.executor,
            **ray_run_info(config.executor, config.ray_address),  # the address joined
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
            **({"sweep": self.sweep, "task_variants": self.variant_metas} if self.sweep else {}),
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
        if self.trackers is not None:  # each record this run computes, as it comes back
            callbacks["on_done"] = self._logged(callbacks.get("on_done"))
        self.records = run_grid(
            grid,
            self.folder,
            **self.config.grid_settings(),
            registry=self.registry,
            cost=cost,
            **callbacks,
        )
        return self.records

    def _logged(self, on_done: Callable[[dict[str, Any]], None] | None) -> Callable[..., None]:
        trackers = self.trackers
        assert trackers is not None

        def logged(record: dict[str, Any]) -> None:
            if on_done is not None:
                on_done(record)
            trackers.log_cell(record)

        return logged

    def timing_phase(self, on_notice: Callable[[str], None]) -> list[dict[str, Any]]:
        """Time every pair's steps before any cell runs, so nothing else of the run shares the
        cores, with the rounds interleaved across a task's pairs; the phase's summary (how
        steady the machine was, each task's speed reference, whose machine was timed) goes
        into run.json's ``timing``."""
        from harness.grid.executors import default_threads
        from harness.grid.runner import timing_specs
        from harness.training.device import DeviceError, resolve_device
        from harness.training.timing_phase import run_timing

        assert self.folder is not None, "open() the session first"
        config = self.config
        workers = min(config.worker_count, os.cpu_count() or 1, len(self.grid.cells) or 1)
        threads = config.threads or default_threads(config.executor, workers)
        specs = timing_specs(self.grid, threads)
        machine = "this machine" if config.executor != "ray" else "the Ray driver"
        try:
            resolved = resolve_device(str(self.device))
        except DeviceError as exc:  # with Ray the nodes may have what the driver lacks
            reason = f"{machine} has no {self.device} ({exc}); speed columns stay empty"
            self.info["timing"] = {"skipped": reason, "host": platform.node()}
            on_notice(f"timing skipped: {reason}")
            return []
        specs = [dataclasses.replace(s, device=str(resolved)) for s in specs]
        started = time.perf_counter()
        phase = run_timing(specs, self.folder, self.registry, reference=config.speed_reference)
        timings = phase.records
        self.info["timing"] = {
            "pairs": len(specs),
            "timed_now": phase.timed,
            "threads": threads,
            "seconds": time.perf_counter() - started,
            "failed": [t["pair_id"] for t in timings if t.get("error")],
            "host": platform.node(),
            "machine": machine,
            "device": str(resolved),
            "interleaved": "rounds round-robin across each task's pairs",
            "references": phase.references,
            **_noise_summary(phase.noise, timings),
        }
        for timing in timings:
            if timing.get("error"):
                on_notice(f"timing {timing['pair_id']} failed: {timing['error']}")
        if self.info["timing"].get("unstable"):
            on_notice(f"speed figures unstable: {self.info['timing']['unstable_reason']}")
        return timings


def _noise_summary(noise: dict[str, Any] | None, timings: list[dict[str, Any]]) -> dict[str, Any]:
    """run.json's record of how steady the machine was: this phase's readings, or (every pair
    read back from the folder) whether the phase that timed them said unstable."""
    if noise is not None:
        return {"noise": noise, "unstable": noise["unstable"],
                "unstable_reason": noise["unstable_reason"]}  # fmt: skip
    unstable = any(t.get("speed_unstable") for t in timings)
    return {
        "unstable": unstable,
        "unstable_reason": "the earlier timing phase these figures come from said so"
        if unstable
        else "",
    }


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
    session.on_notice = on_notice
    for name, meta in session.metas.items():
        if meta.error:
            on_notice(f"task {name}: its plugin failed, so its cells fail: {meta.error}")
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
