"""Run settings: defaults, then ``[tool.harness]`` in pyproject.toml or a ``--config`` TOML file,
then command-line flags. ``run.json`` records the settings in effect."""

from __future__ import annotations

import json
import math
import sys
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.settings.overrides import check_maximum, check_recipe_overrides, recipe_fields
from harness.training.device import DeviceError, check_device_name

#: Recipe fields that are also settings of their own (``--epochs``, ``epochs = 5``).
NAMED_RECIPE_FIELDS = ("epochs", "hidden_size", "lr")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


#: A grid of more seeds than this per cell is a typo, not a benchmark: each seed is a row
#: of every table, and planning 1e8 of them fills the memory before a cell runs.
MAX_SEEDS = 10_000
#: The largest seed every random generator in play takes (numpy's limit; torch takes 2**64).
MAX_SEED = 2**32 - 1


@dataclass
class RunConfig:
    """Everything a grid run needs; ``None`` for tasks/models means every one installed."""

    tasks: list[str] | None = None
    models: list[str] | None = None
    seed: int = 0
    seeds: int = 1
    device: str = "auto"  # cuda, then mps, then cpu
    epochs: int | None = None
    hidden_size: int | None = None
    params: int | None = None  # each model's hidden size set so its parameter count is closest
    lr: float | None = None
    select: str = "best"  # which epoch a cell reports: best on validation, or last
    patience: int | None = None  # stop after this many epochs without a better validation figure
    #: stop a cell once its validation primary metric reaches this: a number applies to every
    #: task ranked higher-is-better (accuracy 0.99, as Zoology stops); ``{task = value}`` to
    #: the tasks named, in their metric's direction (``{adding = 0.001}`` for an MSE)
    until: float | None = None
    until_task: dict[str, float] = field(default_factory=dict)
    suite: list[str] | None = None  # tasks with any of these tags (beside those named by tasks)
    objective: str | None = None  # `harness tune`: the validation column trials are scored on
    workers: int | None = None  # None: one per CPU core
    threads: int | None = None  # torch threads per worker; None: the cores split between workers
    executor: str = "pool"  # local (in this process), pool (processes), ray (Ray tasks)
    ray_address: str | None = None  # join this Ray cluster; None: RAY_ADDRESS, else a local one
    gpus_per_cell: float = 0.0  # > 0: cells share GPUs on long-lived Ray actors
    out: str | None = None
    results_dir: str = "results"
    resume: bool = False
    save_models: bool = False
    trials: int = 20  # `harness tune`: trials per task x model
    timing: bool = True  # time each pair's steps on their own (the speed figures)
    #: the model each pair's speed is also given relative to (timed in the same interleaved
    #: rounds); None: rnn where the task has it, else the task's first timed model
    speed_reference: str | None = None
    seeds_together: bool = False  # a pair's seeds in one batched computation (torch.func)
    log: list[str] = field(default_factory=list)  # trackers to log to: tensorboard, mlflow, ...
    log_dir: str | None = None  # their files go to LOG_DIR/<run>/<logger>/ (default <run>/logs/)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``{NAME = [V1, V2]}``: every combination a variant of the grid (``--sweep NAME=V1,V2``;
    #: NAME a TASK.FIELD or MODEL.FIELD option, a recipe field or params)
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    #: Any Recipe field, overridden for every task (epochs, hidden_size and lr have their own
    #: settings above, which ``load_config`` fills from here).
    recipe: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`HarnessError` for nonsense values, one clear line each."""
        for name in ("seeds", "workers", "threads", "trials"):
            value = getattr(self, name)
            if name in ("workers", "threads") and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HarnessError(f"{name} must be a positive integer, not {value!r}")
            check_maximum(name, value)
        if self.select not in ("best", "last"):
            raise HarnessError(f"select must be 'best' or 'last', not {self.select!r}")
        if self.params is not None and "hidden_size" in self.recipe_overrides():
            raise HarnessError("give params or hidden_size, not both (params sets the hidden size)")
        for name in ("epochs", "hidden_size", "patience", "params"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise HarnessError(f"{name} must be a positive integer, not {value!r}")
            check_maximum(name, value)
        if self.until is not None and not (
            isinstance(self.until, (int, float)) and math.isfinite(self.until)
        ):
            raise HarnessError(f"until must be a finite number, not {self.until!r}")
        for task, value in self.until_task.items():
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and math.isfinite(value)
            ):
                raise HarnessError(f"until for {task} must be a finite number, not {value!r}")
        if self.objective is not None and not (
            isinstance(self.objective, str) and self.objective.startswith("val_")
        ):
            raise HarnessError(
                f"objective must be a validation column (val_loss, val_accuracy, "
                f"val_perplexity, val_task_<metric>), not {self.objective!r}"
            )
        if self.lr is not None and not (
            isinstance(self.lr, (int, float)) and 0 < self.lr < math.inf
        ):
            raise HarnessError(f"lr must be a positive finite number, not {self.lr!r}")
        from harness.grid.executors import EXECUTORS

        if self.executor not in EXECUTORS:
            raise HarnessError(
                f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}"
            )
        gpus = self.gpus_per_cell
        if (
            isinstance(gpus, bool)
            or not isinstance(gpus, (int, float))
            or not math.isfinite(gpus)
            or gpus < 0
        ):
            raise HarnessError(f"gpus_per_cell must be a number >= 0, not {gpus!r}")
        for name in ("gpus_per_cell", "ray_address"):
            if getattr(self, name) and self.executor != "ray":
                raise HarnessError(f"{name} needs executor ray (--executor ray)")
        check_recipe_overrides(self.recipe, "recipe")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise HarnessError(f"seed must be a non-negative integer, not {self.seed!r}")
        if self.seeds > MAX_SEEDS:
            raise HarnessError(f"seeds must be at most {MAX_SEEDS:,}, not {self.seeds:,}")
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise HarnessError(
                f"seeds must lie in 0..{MAX_SEED} (2**32 - 1, what numpy accepts), "
                f"not up to {self.seed + self.seeds - 1}"
            )
        try:
            check_device_name(self.device)
        except DeviceError as exc:
            raise HarnessError(str(exc)) from None

    def until_for(self, task: str, higher_is_better: bool) -> float | None:
        """The validation target that stops ``task``'s cells early, or ``None``."""
        if task in self.until_task:
            return float(self.until_task[task])
        return float(self.until) if self.until is not None and higher_is_better else None

    @property
    def worker_count(self) -> int:
        import os

        return self.workers or os.cpu_count() or 1

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    def grid_settings(self) -> dict[str, Any]:
        """Where and how :func:`harness.grid.runner.run_grid` runs cells, for ``run`` and ``tune``
        alike: executor, workers, threads, Ray address, GPU share, whether to keep weights,
        whether a pair's seeds train together."""
        return {
            "workers": self.workers,
            "threads": self.threads,
            "executor": self.executor,
            "ray_address": self.ray_address,
            "gpus_per_cell": self.gpus_per_cell,
            "save_models": self.save_models,
            "seeds_together": self.seeds_together,
        }

    def recipe_overrides(self) -> dict[str, Any]:
        """The Recipe fields set for every task: the ``recipe`` table and the named settings."""
        named = {"epochs": self.epochs, "hidden_size": self.hidden_size, "lr": self.lr}
        return {**self.recipe, **{k: v for k, v in named.items() if v is not None}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: its ``[tool.harness]`` table, or its top level."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise HarnessError(f"config file {path} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise HarnessError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"malformed config file {path}: {exc}") from None
    if path.name == "pyproject.toml" or "tool" in data:
        return data.get("tool", {}).get("harness", {})
    return data


def gather_recipe(settings: dict[str, Any], source: str) -> dict[str, Any]:
    """``settings`` with every Recipe field type-checked and in one place: ``epochs``,
    ``hidden_size`` and ``lr`` as settings of their own, every other field in ``recipe``.

    A field may be given at the top level (``batch_size = 32``) or in a ``recipe`` table; the
    same field in both is an error rather than a silent choice.
    """
    settings = dict(settings)
    table = settings.pop("recipe", None) or {}
    if not isinstance(table, dict):
        raise HarnessError(f"{source}: recipe must be a table of field = value, not {table!r}")
    loose = {k: settings.pop(k) for k in list(settings) if k in recipe_fields()}
    twice = sorted(set(table) & set(loose))
    if twice:
        raise HarnessError(
            f"{source}: {', '.join(twice)} set twice (as a setting of its own and in the recipe)"
        )
    recipe = {**table, **loose}
    for name in NAMED_RECIPE_FIELDS:  # settings of their own: check_types and validate() check
        if name in recipe:
            settings[name] = recipe.pop(name)
    recipe = check_recipe_overrides(recipe, source)
    if recipe:
        settings["recipe"] = recipe
    return settings


def load_config(
    config_file: Path | None, overrides: dict[str, Any], cwd: Path | None = None
) -> RunConfig:
    """Defaults < ``[tool.harness]`` in ./pyproject.toml (or ``config_file``) < ``overrides``."""
    settings: dict[str, Any] = {}
    if config_file is not None:
        settings = read_toml(Path(config_file))
    else:
        pyproject = (cwd or Path.cwd()) / "pyproject.toml"
        if pyproject.is_file():
            settings = read_toml(pyproject)
    source = str(config_file) if config_file is not None else "pyproject.toml [tool.harness]"
    settings = gather_recipe(settings, source)
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise HarnessError(
            f"unknown setting(s) {', '.join(unknown)} in config (known: "
            f"{', '.join(sorted(known))}, and every recipe field)"
        )
    for key in ("tasks", "models", "suite", "log"):
        if isinstance(settings.get(key), str):
            settings[key] = [settings[key]]
    check_types(settings)  # the file's own values, also those a flag then overrides
    overrides = gather_recipe({k: v for k, v in overrides.items() if v is not None}, "--recipe")
    recipe = {**settings.get("recipe", {}), **overrides.get("recipe", {})}
    settings.update(overrides)
    if recipe:
        settings["recipe"] = recipe
    for key in ("tasks", "models", "suite", "log"):
        if isinstance(settings.get(key), str):
            settings[key] = [settings[key]]
    check_types(settings)
    config = RunConfig(**settings)
    config.validate()
    return config


def check_types(settings: dict[str, Any]) -> None:
    """Each setting against :class:`RunConfig`'s annotation: a TOML ``device = 3`` or
    ``epochs = true`` is one clear line here, not a traceback (or a silent 1) later."""
    hints = typing.get_type_hints(RunConfig)
    for name, value in settings.items():
        if not _fits(value, hints[name]):
            shown = json.dumps(value, default=repr)  # as TOML spells it: true, not True
            raise HarnessError(f"setting {name!r} must be {_describe(hints[name])}, not {shown}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, origin or hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        if typing.get_origin(args[1]) is list:
            return "a table of lists (NAME = [V1, V2])"
        return "a table of tables (TASK = {NAME = VALUE})" if args[1] is not Any else "a table"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")
