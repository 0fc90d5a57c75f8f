"""A cell (one task x model x seed) and the functions that run them, in any process.

``execute_cell`` and ``execute_cells`` are top-level functions of plain inputs and outputs so
a process pool can run them; they never raise for a cell's own failure: the failure becomes
the cell's record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from harness.plugin_api.task import Recipe
from harness.storage import status


def cell_id(task: str, model: str, seed: int, variant: str = "") -> str:
    """The name a cell's files go by (cells/<id>.json, models/<id>.pt); ``variant``: a
    sweep's variant as a file-name part (:func:`harness.settings.sweep.slug`)."""
    if variant:
        return f"{task}__{model}__{variant}__seed{seed}"
    return f"{task}__{model}__seed{seed}"


def variant_label(variant: dict[str, Any]) -> str:
    """How tables name a sweep's variant: ``hidden_size=32, mqar.length=64`` (empty: none)."""
    return ", ".join(f"{name}={value}" for name, value in variant.items())


def variant_slug(variant: dict[str, Any]) -> str:
    """A variant as a safe part of a file name (no ``__``, which separates a cell id's parts)."""
    text = ",".join(f"{name}={value}" for name, value in variant.items())
    return re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9._=,+-]", "_", text))


@dataclass(frozen=True)
class Cell:
    """Everything that determines one cell's result, and nothing that does not."""

    task: str
    model: str
    seed: int
    recipe: Recipe
    device: str
    task_options: dict[str, Any] = field(default_factory=dict)
    #: "distribution version" of the plugins that offer the task and the model: an upgraded
    #: plugin changes the config hash, so its cells rerun instead of reusing stale results.
    task_plugin: str = ""
    model_plugin: str = ""
    select: str = "best"
    patience: int | None = None
    evaluate_test: bool = True
    #: stop once the validation figure of the primary metric reaches this (``--until``)
    until: float | None = None
    #: the model's options set with ``-o MODEL.FIELD=VALUE`` (the rest keep their defaults)
    model_options: dict[str, Any] = field(default_factory=dict)
    #: with ``--sweep``: the swept names that apply to this cell and their values
    variant: dict[str, Any] = field(default_factory=dict)

    @property
    def cell_id(self) -> str:
        return cell_id(self.task, self.model, self.seed, self.variant_slug)

    @property
    def variant_label(self) -> str:
        return variant_label(self.variant)

    @property
    def variant_slug(self) -> str:
        return variant_slug(self.variant)

    def pair_key(self) -> str:
        """The cell less its seed, as text (the options are a dict): equal for the seeds of
        one pair under one config, which can then be trained together."""
        return repr(dataclasses.replace(self, seed=0))

    def config(self) -> dict[str, Any]:
        import torch

        from harness.version import PLUGIN_API_VERSION, __version__

        return {
            "task": self.task,
            "task_options": self.task_options,
            "model": self.model,
            "model_options": self.model_options,
            "task_plugin": self.task_plugin,
            "model_plugin": self.model_plugin,
            "seed": self.seed,
            "recipe": {k: v for k, v in asdict(self.recipe).items() if k != "search"},
            "device": device_kind(self.device),
            "select": self.select,
            "patience": self.patience,
            "until": self.until,
            "evaluate_test": self.evaluate_test,
            "dtype": "float32",
            "harness": __version__,
            "plugin_api": PLUGIN_API_VERSION,
            "torch": torch.__version__,
            **({"variant": self.variant} if self.variant else {}),
        }

    def config_hash(self, device: str | None = None) -> str:
        """Hash of the full resolved config: a resume reuses a result only if this matches.
        ``device``: the device the cell ran on, for a cell given ``auto`` (with Ray each node
        resolves it: a record made there is compared under the kind it got)."""
        config = self.config()
        if device is not None:
            config["device"] = device_kind(device)
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def device_kind(name: str) -> str:
    """What of a device a cell's config hash holds: its kind (``cpu``, ``cuda``, ``mps``), not
    its index, and ``auto`` resolved in this process (with Ray: on the node running the cell).
    So a cell run with ``--device auto`` on Ray and with the pool on a CPU hash alike."""
    if name == "auto":
        from harness.training.device import resolve_device

        return resolve_device("auto").type
    return name.partition(":")[0]


@lru_cache(maxsize=1)
def _plugins():
    from harness.plugin_api.manager import load_plugins

    return load_plugins()


def base_record(cell: Cell) -> dict[str, Any]:
    r = cell.recipe
    return {
        "cell_id": cell.cell_id,
        "task": cell.task,
        "model": cell.model,
        "seed": cell.seed,
        "plugin_task": cell.task_plugin,
        "plugin_model": cell.model_plugin,
        "config_hash": cell.config_hash(),
        "device": cell.device,
        "dtype": "float32",
        "epochs": r.epochs,
        "batch_size": r.batch_size,
        "hidden_size": r.hidden_size,
        "num_layers": r.num_layers,
        "optimizer": r.optimizer,
        "lr": r.lr,
        "weight_decay": r.weight_decay,
        "select": cell.select,
        "patience": cell.patience,
        "until": cell.until,
        **(
            {"variant": cell.variant_label, "variant_slug": cell.variant_slug,
             "sweep": dict(cell.variant)}  # fmt: skip
            if cell.variant
            else {}
        ),
    }


def _started_record(cell: Cell) -> dict[str, Any]:
    import torch

    record = base_record(cell)
    record.update(
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        python_version=platform.python_version(),
        host=platform.node(),
        **_ray_node(),
    )
    return record


def _ray_node() -> dict[str, str]:
    """``{"ray_node": id}`` in a process connected to Ray (a Ray worker), else nothing."""
    ray = sys.modules.get("ray")
    try:
        if ray is not None and ray.is_initialized():
            return {"ray_node": ray.get_runtime_context().get_node_id()}
    except Exception:  # a partly imported or shut down Ray: the host is enough
        pass
    return {}


def _outcome_into(record: dict[str, Any], outcome: Any, keep_weights: bool) -> None:
    """A finished training's outcome (or its :class:`Diverged`) into the cell's record."""
    from harness.training.train import Diverged

    if isinstance(outcome, Diverged):
        record.update(status=status.DIVERGED, error=str(outcome.args[0]), curve=outcome.args[1])
        return
    record.update(status=status.OK, **outcome.metrics, curve=outcome.curve)
    record["samples"] = outcome.samples
    if keep_weights:
        record["state_dict"] = outcome.state_dict


def execute_cell(cell: Cell, registry: Any = None, keep_weights: bool = False) -> dict[str, Any]:
    """Run one cell and return its record: metrics, curve, samples, and weights on request."""
    from harness.training.contract import ContractError
    from harness.training.device import device_name, resolve_device
    from harness.training.train import Diverged, Selection, train_cell

    registry = registry or _plugins()
    record = _started_record(cell)
    started = time.perf_counter()
    try:
        device = resolve_device(cell.device)
        record["device"], record["device_name"] = str(device), device_name(device)
        task = registry.tasks[cell.task].with_options(**cell.task_options)
        outcome = train_cell(
            task,
            registry.models[cell.model].with_options(**cell.model_options),
            cell.seed,
            device,
            cell.recipe,
            keep_weights=keep_weights,
            selection=Selection(cell.select, cell.patience, cell.until),
            evaluate_test=cell.evaluate_test,
        )
    except Diverged as exc:
        _outcome_into(record, exc, keep_weights)
    except ContractError as exc:  # checked before training: the side at fault is known
        name = cell.task if exc.culprit == "task" else cell.model
        origin = registry.origins.get((exc.culprit, name))
        where = f" [{exc.culprit} plugin {origin}]" if origin else ""
        record.update(
            status=status.FAILED,
            error=f"broken contract: {exc.culprit} {name!r}: {exc}{where}".splitlines()[0],
            traceback=traceback.format_exc(),
            curve=[],
        )
    except Exception as exc:  # a cell that raises is recorded, and every other cell runs
        where = _blame(exc, registry, cell)
        record.update(
            status=status.FAILED,
            error=f"{type(exc).__name__}: {exc}{where}".splitlines()[0],
            traceback=traceback.format_exc(),
            curve=[],
        )
    else:
        _outcome_into(record, outcome, keep_weights)
    record["wall_seconds"] = time.perf_counter() - started
    return record


def execute_cells(
    cells: list[Cell], registry: Any = None, keep_weights: bool = False
) -> list[dict[str, Any]]:
    """Run a unit of cells and return their records. Cells that differ only in the seed are
    trained together in one batched computation (:mod:`harness.training.seeds`); if that cannot be
    done, or raises, each cell runs on its own, so every failure gets its own record.
    """
    registry = registry or _plugins()
    if len(cells) > 1:
        records = _execute_together(cells, registry, keep_weights)
        if records is not None:
            return records
    return [execute_cell(cell, registry, keep_weights) for cell in cells]


def _execute_together(
    cells: list[Cell], registry: Any, keep_weights: bool
) -> list[dict[str, Any]] | None:
    from harness.training.device import device_name, resolve_device
    from harness.training.seeds import train_seeds_together
    from harness.training.train import Selection

    first = cells[0]
    if len({cell.pair_key() for cell in cells}) > 1:
        return None
    started = time.perf_counter()
    try:
        device = resolve_device(first.device)
        task = registry.tasks[first.task].with_options(**first.task_options)
        outcomes = train_seeds_together(
            task,
            registry.models[first.model].with_options(**first.model_options),
            [cell.seed for cell in cells],
            device,
            first.recipe,
            selection=Selection(first.select, first.patience, first.until),
            keep_weights=keep_weights,
            evaluate_test=first.evaluate_test,
        )
    except Exception:  # e.g. an operator without a vmap rule: train the seeds apart instead
        return None
    wall = (time.perf_counter() - started) / len(cells)
    records = []
    for cell, outcome in zip(cells, outcomes):
        record = _started_record(cell)
        record["device"], record["device_name"] = str(device), device_name(device)
        _outcome_into(record, outcome, keep_weights)
        record["wall_seconds"] = wall  # the group's wall time, shared out
        record["seeds_together"] = len(cells)
        records.append(record)
    return records


def _blame(exc: BaseException, registry: Any, cell: Cell) -> str:
    """Name the plugin (task or model, and its package) whose code raised.

    The innermost traceback frame inside a plugin's code decides: its entry-point module, or
    another module of the package that holds the cell's task or model plugin (a network
    defined beside the registration). When no plugin code is on the stack (torch raised on
    the model's behalf), the cell's model plugin is named.
    """
    tb = exc.__traceback__
    modules = []
    while tb is not None:
        modules.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    origins = getattr(registry, "origins", {})
    own = [
        (kind, origins.get((kind, name)))
        for kind, name in (("task", cell.task), ("model", cell.model))
    ]
    own = [(kind, origin) for kind, origin in own if origin is not None]
    others = [("", o) for o in getattr(registry, "plugins", []) if o not in dict(own).values()]
    for module in reversed(modules):
        for kind, origin in own + others:
            if _within(module, _module_of(origin)):
                return f" [{kind + ' ' if kind else ''}plugin {origin}]"
        for kind, origin in own:
            package = _module_of(origin).rpartition(".")[0]
            if package and package not in ("harness",) and _within(module, package):
                return f" [{kind} plugin {origin}]"
    origin = origins.get(("model", cell.model))
    return f" [model plugin {origin}]" if origin else ""


def _module_of(origin: Any) -> str:
    return origin.module.partition(":")[0]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def init_worker(threads: int, pool: bool = False) -> None:
    """Limit torch's threads so workers do not fight over cores.

    In a pool worker, Ctrl-C is left to the parent, which saves what finished and stops the
    pool; otherwise every worker would print its own KeyboardInterrupt traceback. A pool
    worker also dies with the parent, so killing the main process leaves no orphans.
    """
    if pool:
        import signal

        from harness.grid.lifecycle import die_with_parent

        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)
