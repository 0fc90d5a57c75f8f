"""The logger contract: what a tracker plugin registers, and what the harness calls on it.

A plugin offers a tracker (an experiment tracker, a dashboard, a chat notifier) through the
``register_loggers`` hook, like a task or a model::

    from harness import hookimpl
    from harness.loggers.contract import Logger

    @hookimpl
    def register_loggers(register):
        register(Logger(name="notes", description="one line per cell", open=open_run))

A user picks it with ``--log notes`` (or ``log = ["notes"]`` in ``[tool.harness]``). Then, in
the driver process only, whatever executor runs the cells:

1. ``open(context)`` once per run, after run.json is written and before any cell runs;
   it returns a :class:`RunLogger`.
2. ``log_cell(record)`` for each cell this run computes, the moment its record is written
   (a record a resumed run found on disk is never handed again, so nothing is logged twice).
3. ``finish(status, files)`` once, after the report is written, however the run ended.

Anything these raise (an unreachable server, a full disk) costs that logger one warning line
and its place in the run; the cells, the other loggers and the run's own files go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.storage.run_folder import RunFolder


@dataclass(frozen=True)
class LogContext:
    """What a logger is opened with."""

    #: the run folder (``folder.path``; its files are read-only to a logger)
    folder: RunFolder
    #: this logger's own folder, not yet made: ``<run>/logs/<name>/``, or with ``--log-dir
    #: DIR`` ``DIR/<run folder's name>/<name>/``
    log_dir: Path
    #: run.json as written when the run started: config, resolved, environment, plugins, tasks
    info: Mapping[str, Any]
    #: the folder held a run before (``--resume`` or ``--out`` of an earlier run): continue
    #: that run's records rather than start another
    resumed: bool

    @property
    def run_name(self) -> str:
        """The run folder's name (a timestamp unless ``--out`` named it)."""
        return self.folder.path.name


class RunLogger(Protocol):
    """One run's tracker, as ``Logger.open`` returns it."""

    #: where it logs and how to look, in one line (``tensorboard --logdir ...``): printed at
    #: the end of the run and kept in run.json under ``loggers``
    target: str

    def log_cell(self, record: dict[str, Any]) -> None:
        """A finished cell's record, as in ``cells/<cell_id>.json``: ``task``, ``model``,
        ``seed``, ``status``, ``config_hash``, the recipe, the final ``train_*``/``val_*``/
        ``test_*``/``task_*`` figures, and ``curve`` (one dict per epoch: ``epoch``,
        ``train_loss``, ``val_loss``, ...). A failed cell has ``error`` and often no figures."""

    def finish(self, status: str, files: list[Path]) -> None:
        """The run ended with ``status`` (``finished``, ``interrupted`` or ``failed``); ``files``
        are what it left in the folder: run.json, the report, tables and plots."""


@dataclass(frozen=True)
class Logger:
    """A logger plugin's registration: ``open(context) -> RunLogger``, called in the driver.

    Keep the module light: import the tracker's package inside ``open``, and raise
    :class:`harness.MissingDependency` from the hook (``harness.require``) when it is not
    installed, so ``--log NAME`` says how to install it before any cell runs.
    """

    name: str
    description: str
    open: Callable[[LogContext], RunLogger]
