"""A finished (or partly finished) run read back from its folder, and its leaderboards."""

from __future__ import annotations

import contextlib
import dataclasses
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
from harness.report.verdict import Verdict, verdict
from harness.storage.run_folder import BadFile, RunFolder
from harness.storage.status import UNFINISHED


def unit_name(task: str, variant: str) -> str:
    """How a task's variant is named in every table and heading."""
    return f"{task} [{variant}]" if variant else task


@dataclass(frozen=True)
class Leaderboard:
    """One task's models aggregated over seeds and ranked (see ``ranking.aggregate``)."""

    task: str
    meta: TaskMeta
    frame: pd.DataFrame
    #: with a sweep: the variant this board ranks (``hidden_size=32, mqar.length=64``)
    variant: str = ""

    @property
    def name(self) -> str:
        """The task, and with a sweep its variant: ``mqar [hidden_size=32]``."""
        return unit_name(self.task, self.variant)

    @property
    def title(self) -> str:
        return (
            f"{self.name}: ranked by {self.meta.primary_metric} ({self.meta.direction} is better)"
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
        """One row per cell; a finished cell whose loss is far above every baseline's reads
        ``diverged`` here (``ranking.mark_diverged``), in every table built from it."""
        return ranking.mark_diverged(cells_frame(self.records, self.timings), self.metas)

    @cached_property
    def models(self) -> list[str]:
        """Every model of the run, in run order (run.json's list, else the cells')."""
        listed = (self.info.get("resolved") or {}).get("models") or []
        return list(dict.fromkeys([*listed, *self.cells["model"].dropna()]))

    def leaderboards(self) -> list[Leaderboard]:
        """One leaderboard per task that has finished cells, in run order."""
        return list(self._boards)

    @cached_property
    def units(self) -> list[tuple[str, str, TaskMeta]]:
        """(task, variant, metadata) for every leaderboard the run has: one per task, or with a
        sweep one per variant of it (a swept task option has its own baselines and optimum)."""
        from harness.report.sweep import variants

        units = []
        for task, meta in self.metas.items():
            labels = variants(self.cells, task)
            units += [(task, label, self._variant_meta(task, label, meta)) for label in labels]
            if not labels:
                units.append((task, "", meta))
        return units

    def _variant_meta(self, task: str, label: str, meta: TaskMeta) -> TaskMeta:
        """The task's metadata under the swept task options in ``label`` (run.json's
        ``task_variants``), else the task's own."""
        parts = set(label.split(", "))
        for key, data in ((self.info.get("task_variants") or {}).get(task) or {}).items():
            if set(key.split(", ")) <= parts:
                with contextlib.suppress(TypeError, ValueError, KeyError):
                    return TaskMeta.from_dict(data)
        return meta

    def unit_cells(self, task: str, variant: str) -> pd.DataFrame:
        """The cells of one leaderboard: the task's, and with a sweep only its variant's."""
        if not variant:
            return self.cells
        return self.cells[(self.cells["task"] == task) & (self.cells["variant"] == variant)]

    @cached_property
    def _boards(self) -> list[Leaderboard]:
        boards = []
        for task, variant, meta in self.units:
            frame = ranking.aggregate(self.unit_cells(task, variant), task, meta)
            if not frame.empty:
                boards.append(Leaderboard(task, meta, frame, variant))
        return boards

    def verdicts(self) -> list[Verdict]:
        """One verdict per leaderboard of the run (a task without finished cells says so), in
        run order, each named like its board (:attr:`Leaderboard.name`)."""
        boards = {board.name: board.frame for board in self.leaderboards()}
        timing = self.info.get("timing") or {}
        found = []
        for task, variant, meta in self.units:
            name = unit_name(task, variant)
            said = verdict(task, meta, boards.get(name, pd.DataFrame()),
                           self.unit_cells(task, variant), timing)  # fmt: skip
            if variant:
                said = dataclasses.replace(
                    said, task=name, sentence=name + said.sentence.removeprefix(task)
                )
            found.append(said)
        return found

    @property
    def unfinished(self) -> pd.DataFrame:
        """Cells that failed, diverged or did not apply, with their errors."""
        return self.cells[self.cells["status"].isin(UNFINISHED)]
