"""A finished (or partly finished) run read back from its folder, and its leaderboards."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from harness.errors import HarnessError
from harness.plugin_api.names import checked_name
from harness.report import ranking
from harness.report.formatting import one_notation
from harness.report.meta import TaskMeta, read_metas
from harness.report.tables import cells_frame
from harness.storage.run_folder import BadFile, RunFolder
from harness.storage.status import UNFINISHED


@dataclass(frozen=True)
class Leaderboard:
    """One task's models aggregated over seeds and ranked (see ``ranking.aggregate``)."""

    task: str
    meta: TaskMeta
    frame: pd.DataFrame

    @property
    def title(self) -> str:
        return (
            f"{self.task}: ranked by {self.meta.primary_metric} ({self.meta.direction} is better)"
        )

    @property
    def caption(self) -> str | None:
        """What the loss covers, where a task scores only the last steps of each sequence."""
        scored = self.meta.scored_steps
        return ranking.scored_text(scored) if scored else None

    def table(self, compact: bool = False) -> pd.DataFrame:
        """The leaderboard as strings, reference rows included (compact: the terminal view);
        each column of numbers in one notation."""
        return one_notation(ranking.display_table(self.frame, self.meta, compact=compact))


@dataclass
class LoadedRun:
    """The records and run.json of a run folder, with the tables built from them."""

    folder: RunFolder
    info: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    #: Cell files that could not be read: left out of every table, named to the user.
    bad_files: list[BadFile] = field(default_factory=list)

    @classmethod
    def load(cls, path: Any, require_cells: bool = True) -> LoadedRun:
        """Read a run folder; a one-line error when it is not one or (optionally) is empty."""
        folder = path if isinstance(path, RunFolder) else RunFolder.open(path)
        info = folder.read_info()  # a one-line error when unreadable
        try:
            metas = read_metas(info)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            where = folder.run_file
            raise HarnessError(f"{where} does not describe the run's tasks: {exc!r}") from None
        for task in metas:
            checked_name("task", task)  # task names become plot file names
        records, bad = folder.scan_records()
        if require_cells and not records:
            unreadable = f" ({len(bad)} unreadable: {bad[0]}, ...)" if bad else ""
            raise HarnessError(f"{folder.path} has no finished cells yet{unreadable}")
        run = cls(folder, info, records, bad)
        run.__dict__["metas"] = metas  # the cached_property, already computed
        return run

    @cached_property
    def metas(self) -> dict[str, TaskMeta]:
        return read_metas(self.info)

    @cached_property
    def timings(self) -> list[dict[str, Any]]:
        """The timing phase's records: each pair's speed figures."""
        return self.folder.read_timings()

    @cached_property
    def cells(self) -> pd.DataFrame:
        return cells_frame(self.records, self.timings)

    @cached_property
    def models(self) -> list[str]:
        """Every model of the run, in run order (run.json's list, else the cells')."""
        listed = (self.info.get("resolved") or {}).get("models") or []
        return list(dict.fromkeys([*listed, *self.cells["model"].dropna()]))

    def leaderboards(self) -> list[Leaderboard]:
        """One leaderboard per task that has finished cells, in run order."""
        return list(self._boards)

    @cached_property
    def _boards(self) -> list[Leaderboard]:
        boards = []
        for task, meta in self.metas.items():
            frame = ranking.aggregate(self.cells, task, meta)
            if not frame.empty:
                boards.append(Leaderboard(task, meta, frame))
        return boards

    @property
    def unfinished(self) -> pd.DataFrame:
        """Cells that failed, diverged or did not apply, with their errors."""
        return self.cells[self.cells["status"].isin(UNFINISHED)]
