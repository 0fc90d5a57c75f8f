"""The loggers a run chose (``--log NAME``): checked before anything runs, opened with the run,
handed each record the run computes, finished after the report. A logger that raises is
warned about in one line and dropped; the cells, the other loggers and the run's own files go
on, and run.json's ``loggers`` section says what happened."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, unknown_name
from harness.loggers.contract import LogContext, RunLogger
from harness.plugin_api.manager import Registry
from harness.storage.run_folder import RunFolder

#: characters of a logger's error the warning shows (run.json keeps its whole first line)
SHOWN = 240


def check_loggers(names: Iterable[str], registry: Registry) -> None:
    """Refuse an unknown logger, or one whose package is missing (with its pip line), in one
    line, before a folder exists."""
    for name in names:
        if name in registry.loggers:
            continue
        hint = registry.install_hint(name)
        if hint:
            raise HarnessError(f"--log {hint}")
        raise unknown_name("logger", name, registry.loggers)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class Trackers:
    """The open loggers of one run, each isolated from the others and from the run."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.warn = warn
        self.live: dict[str, RunLogger] = {}
        #: per logger: ``target`` (where it logs) and, once it failed, ``error``
        self.summary: dict[str, dict[str, str]] = {}

    @classmethod
    def open(
        cls,
        names: Iterable[str],
        registry: Registry,
        folder: RunFolder,
        info: Mapping[str, Any],
        *,
        resumed: bool,
        log_dir: str | Path | None = None,
        warn: Callable[[str], None] = lambda text: None,
    ) -> Trackers:
        """Open each chosen logger for the run in ``folder`` (run.json already written)."""
        trackers = cls(warn)
        for name in dict.fromkeys(names):
            context = LogContext(folder, folder.logger_dir(name, log_dir), info, resumed)
            trackers.summary[name] = {}
            opened = trackers._guard(name, "open", registry.loggers[name].open, context)
            if "error" not in trackers.summary[name]:
                trackers.live[name] = opened
                trackers.summary[name]["target"] = str(getattr(opened, "target", ""))
        return trackers

    def log_cell(self, record: dict[str, Any]) -> None:
        """One newly computed cell's record to every logger still open (each gets its own
        copy: a logger cannot change what the report is written from)."""
        for name, logger in list(self.live.items()):
            self._guard(name, "log_cell", logger.log_cell, copy.deepcopy(record))

    def finish(self, status: str, files: list[Path]) -> None:
        """The run ended with ``status``, its report written: each logger closes its run."""
        for name, logger in list(self.live.items()):
            self._guard(name, "finish", logger.finish, status, list(files))
        self.live.clear()

    def _guard(self, name: str, step: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as exc:  # a tracker's trouble must never stop the run
            self.live.pop(name, None)
            error = f"{step}: {_one_line(exc)}"
            self.summary.setdefault(name, {})["error"] = error
            shown = error if len(error) <= SHOWN else error[: SHOWN - 3] + "..."
            self.warn(
                f"logger {name} failed and logs nothing more of this run ({shown}); "
                "the run and its own files go on"
            )
            return None
