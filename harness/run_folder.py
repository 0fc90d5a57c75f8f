"""The run folder's layout, in one place: every path a run writes or reads is built here.

```
<run>/run.json                      settings, environment, plugins, task metadata, format version
<run>/cells/<cell_id>.json          one record per finished cell, written atomically
<run>/models/<cell_id>.pt           with --save-models: the trained weights
<run>/cells.{csv,parquet}           the per-cell table
<run>/curves.{csv,parquet}          per-epoch curves
<run>/leaderboard.{md,csv}          per-task leaderboards
<run>/plots/<task>_<kind>.png       figures
<run>/report.html                   the self-contained report
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.storage import write_atomic, write_json

#: Bumped when the layout or run.json changes in a way older readers would misread.
FORMAT_VERSION = 1
RUN_FILE = "run.json"


class RunFolder:
    """One run's folder on disk: the only code that knows where its files live."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- finding and opening runs ---------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path) -> RunFolder:
        """Make (or reopen) a folder for writing; one-line error when it cannot be written."""
        folder = cls(path)
        out = folder.path
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
            for stale in out.rglob(".*.tmp"):  # left by a run killed mid-write; never read
                stale.unlink()
        except OSError as exc:
            raise HarnessError(
                f"cannot write to output folder {out}: {exc.strerror or exc}"
            ) from None
        return folder

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder; a one-line error when ``path`` is not one."""
        folder = cls(path)
        if not folder.run_file.is_file():
            raise HarnessError(f"{folder.path} is not a run folder (no {RUN_FILE})")
        return folder

    @classmethod
    def latest(cls, base: str | Path) -> RunFolder | None:
        """The newest run folder under ``base`` (names are timestamps), or ``None``."""
        base = Path(base)
        if not base.is_dir():
            return None
        runs = sorted(p for p in base.glob("*") if (p / RUN_FILE).is_file())
        return cls(runs[-1]) if runs else None

    # -- paths ----------------------------------------------------------------------------
    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def cells_dir(self) -> Path:
        return self.path / "cells"

    def cell_file(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def model_file(self, cell_id: str) -> Path:
        return self.path / self.model_name(cell_id)

    @staticmethod
    def model_name(cell_id: str) -> str:
        """The weights' path relative to the run folder, as a record stores it."""
        return f"models/{cell_id}.pt"

    @property
    def cells_table(self) -> Path:
        """Stem of cells.csv / cells.parquet."""
        return self.path / "cells"

    @property
    def cells_parquet(self) -> Path:
        return self.cells_table.with_suffix(".parquet")

    @property
    def curves_table(self) -> Path:
        """Stem of curves.csv / curves.parquet."""
        return self.path / "curves"

    @property
    def leaderboard_md(self) -> Path:
        return self.path / "leaderboard.md"

    @property
    def leaderboard_csv(self) -> Path:
        return self.path / "leaderboard.csv"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    def plot_file(self, task: str, kind: str) -> Path:
        return self.plots_dir / f"{task}_{kind}.png"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    # -- reading and writing --------------------------------------------------------------
    def read_info(self) -> dict[str, Any]:
        """run.json as a dict."""
        return json.loads(self.run_file.read_text())

    def write_info(self, info: dict[str, Any]) -> None:
        write_json(self.run_file, {"format_version": FORMAT_VERSION, **info})

    def read_record(self, cell_id: str) -> dict[str, Any] | None:
        """One cell's record, or ``None`` when it is missing or unreadable."""
        try:
            return json.loads(self.cell_file(cell_id).read_text())
        except (OSError, ValueError):
            return None

    def read_records(self, skip_unreadable: bool = False) -> list[dict[str, Any]]:
        """Every cell record in the folder, in file-name order."""
        records = []
        for path in sorted(self.cells_dir.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except ValueError:
                if not skip_unreadable:
                    raise
        return records

    def write_record(self, record: dict[str, Any]) -> None:
        """Write a cell's record; its ``state_dict``, if any, goes to models/<cell_id>.pt."""
        record = dict(record)
        weights = record.pop("state_dict", None)
        cell_id = record["cell_id"]
        if weights is not None:
            import io

            import torch

            buffer = io.BytesIO()
            torch.save({"config": record["config_hash"], "state_dict": weights}, buffer)
            write_atomic(self.model_file(cell_id), buffer.getvalue())
            record["model_file"] = self.model_name(cell_id)
        write_json(self.cell_file(cell_id), record)
