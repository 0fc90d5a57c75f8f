"""The run folder's layout, in one place: every path a run writes or reads is built here.

```
<run>/run.json                      settings, environment, plugins, task metadata, format version
<run>/cells/<cell_id>.json          one record per finished cell, written atomically
<run>/models/<cell_id>.pt           with --save-models: the trained weights
<run>/timing/<task>__<model>.json   one timed pair (the speed figures), written atomically
<run>/cells.{csv,parquet}           the per-cell table
<run>/curves.{csv,parquet}          per-epoch curves
<run>/leaderboard.{md,csv}          per-task leaderboards
<run>/plots/<task>_<kind>.png       figures
<run>/report.html                   the self-contained report
<run>/.lock                         held by the run writing to the folder
<run>/tune/study.db                 `harness tune`: the Optuna studies (SQLite)
<run>/tune/cells/<cell_id>.json     `harness tune`: one record per trial, laid out like cells/
<run>/trials.{csv,parquet}          `harness tune`: the per-trial table
<run>/logs/<logger>/                --log NAME: that tracker's own files (--log-dir DIR: they go
                                    to DIR/<run folder's name>/<logger>/ instead)
<run>/logs/tensorboard/<task>/<model>/[<variant>/]seed<N>-<hash>/  --log tensorboard: a run per cell
<run>/logs/mlflow.db                --log mlflow without MLFLOW_TRACKING_URI: the SQLite store
<run>/logs/mlflow-artifacts/        ... and its artifacts (the report and plots of the run)
```

A cell file that cannot be read (truncated, garbage, empty, not a record, a folder in its
place) is never fatal: the report skips and names it, a resumed run reruns the cell.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plugin_api.names import checked_name
from harness.storage.files import is_stale_temp, write_atomic, write_json
from harness.storage.status import CELL_STATUSES

#: Bumped when the layout or run.json changes in a way older readers would misread.
FORMAT_VERSION = 1
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
#: What every cell record has; a JSON object without them is not a record.
RECORD_KEYS = ("cell_id", "task", "model", "seed", "status")
#: A record's core figures (loss, perplexity, accuracy on each split, training seconds) are
#: numbers or None; a record with text there was damaged, and is read as unreadable.
FIGURE_PREFIXES = ("test_", "val_", "train_")


@dataclass(frozen=True)
class BadFile:
    """A file in the run folder that could not be read, and why (one line)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name} ({self.reason})"


class UnreadableFile(Exception):
    """Raised by the readers below; carries the :class:`BadFile`."""

    def __init__(self, bad: BadFile) -> None:
        super().__init__(str(bad))
        self.bad = bad


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`UnreadableFile` for anything else (a FIFO or a
    device in a file's place is never opened: reading one would block or never end)."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise UnreadableFile(BadFile(path, "not a regular file"))
    try:
        value = json.loads(path.read_bytes())
    except IsADirectoryError:
        raise UnreadableFile(BadFile(path, "a folder, not a file")) from None
    except OSError as exc:
        raise UnreadableFile(BadFile(path, exc.strerror or str(exc))) from None
    except ValueError as exc:  # JSON or UTF-8 errors: truncated, garbage, empty
        reason = "empty" if path.stat().st_size == 0 else f"not valid JSON: {exc}"
        raise UnreadableFile(BadFile(path, reason.splitlines()[0])) from None
    if not isinstance(value, dict):
        raise UnreadableFile(BadFile(path, f"a JSON {type(value).__name__}, not an object"))
    return value


def _check_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise UnreadableFile(BadFile(path, f"not a cell record: no {', '.join(missing)}"))
    if record["cell_id"] != path.stem:
        raise UnreadableFile(BadFile(path, f"holds the record of {record['cell_id']!r}"))
    seed = record["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise UnreadableFile(BadFile(path, f"seed {seed!r} is not a seed"))
    if record.get("status") not in CELL_STATUSES:
        raise UnreadableFile(BadFile(path, f"unknown status {record.get('status')!r}"))
    for key, value in record.items():  # figures are numbers (or None), never text
        if key.startswith(FIGURE_PREFIXES) and isinstance(value, (str, list, dict)):
            kind = type(value).__name__
            raise UnreadableFile(BadFile(path, f"{key} is a {kind}, not a number"))
    if not isinstance(record.get("curve", []), list):
        raise UnreadableFile(BadFile(path, "its curve is not a list of epochs"))
    return record


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
            probe = out / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise HarnessError(
                f"cannot write to output folder {out}: {exc.strerror or exc}"
            ) from None
        if folder.run_file.exists() and not folder.run_file.is_file():
            raise HarnessError(f"{folder.run_file} is not a file: move it away and run again")
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
    def timing_dir(self) -> Path:
        return self.path / "timing"

    def timing_file(self, pair_id: str) -> Path:
        return self.timing_dir / f"{pair_id}.json"

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
        return self.plots_dir / f"{checked_name('task', task)}_{kind}.png"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    # -- one writer at a time ---------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock: a second run into the same folder is a one-line error.

        The operating system drops the lock when the holder dies, even by SIGKILL, so a
        killed run never leaves the folder locked.
        """
        from filelock import FileLock, Timeout

        lock = FileLock(self.path / LOCK_FILE, blocking=False)
        try:
            lock.acquire()
        except Timeout:
            raise HarnessError(
                f"another harness run is writing to {self.path}: "
                "wait for it to finish, or give another --out"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def sweep_stale_temp_files(self) -> int:
        """Delete temporary files left by killed writers (never a live writer's); how many."""
        swept = 0
        for temp in self.path.rglob(".*.tmp"):
            if is_stale_temp(temp):
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
                    swept += 1
        return swept

    @property
    def trials(self) -> RunFolder:
        """Where `harness tune` writes its trials' records: ``tune/cells/``, as a run's cells."""
        return RunFolder(self.path / "tune")

    @property
    def study_db(self) -> Path:
        """`harness tune`'s Optuna studies (SQLite)."""
        return self.path / "tune" / "study.db"

    @property
    def trials_table(self) -> Path:
        """Stem of trials.csv / trials.parquet."""
        return self.path / "trials"

    # -- trackers (--log) -------------------------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def logger_dir(self, name: str, base: str | Path | None = None) -> Path:
        """Where logger ``name`` keeps its files: ``<run>/logs/<name>/``, or with ``--log-dir
        BASE`` ``BASE/<run folder's name>/<name>/`` (one TensorBoard logdir for many runs)."""
        root = Path(base) / self.path.name if base is not None else self.logs_dir
        return root / checked_name("logger", name)

    @staticmethod
    def cell_log_dir(logger_dir: Path, record: dict[str, Any]) -> Path:
        """One cell's run inside a logger's folder: ``<task>/<model>/seed<N>-<config hash>``,
        with ``--sweep`` ``<task>/<model>/<variant>/seed<N>-<config hash>`` (the hash tells a
        cell rerun under other settings from the earlier one)."""
        task, model = checked_name("task", record["task"]), checked_name("model", record["model"])
        folder = logger_dir / task / model
        variant = record.get("variant_slug")
        if variant:  # a cell id's part already: safe as a file name
            folder = folder / str(variant)
        return folder / f"seed{int(record['seed'])}-{record['config_hash'][:8]}"

    @property
    def mlflow_db(self) -> Path:
        """`--log mlflow`'s SQLite store when ``MLFLOW_TRACKING_URI`` is not set."""
        return self.logs_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.logs_dir / "mlflow-artifacts"

    def report_files(self) -> list[Path]:
        """What a finished run leaves for a person to read: run.json, report.html, the
        leaderboard, the tables (CSV) and the plots; those that exist."""
        files = [self.run_file, self.report_html, self.leaderboard_md, self.leaderboard_csv]
        files += [self.cells_table.with_suffix(".csv"), self.curves_table.with_suffix(".csv")]
        files += [self.trials_table.with_suffix(".csv")]
        files += sorted(self.plots_dir.glob("*.png"))
        return [path for path in files if path.is_file()]

    # -- reading and writing --------------------------------------------------------------
    def read_info(self) -> dict[str, Any]:
        """run.json as a dict; a one-line error when it cannot be read or was written by a
        newer harness (its ``format_version`` is above this one's)."""
        try:
            info = read_json_object(self.run_file)
        except UnreadableFile as exc:
            raise HarnessError(f"{self.run_file} is unreadable: {exc.bad.reason}") from None
        version = info.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise HarnessError(
                f"{self.run_file} has format_version {version!r}; this harness reads up to "
                f"{FORMAT_VERSION}: upgrade harness to read it"
            )
        return info

    def write_info(self, info: dict[str, Any]) -> None:
        write_json(self.run_file, {"format_version": FORMAT_VERSION, **info})

    def read_record(self, cell_id: str) -> dict[str, Any] | None:
        """One cell's record, or ``None`` when there is none; :class:`UnreadableFile` when
        something is in its place that is not a readable record."""
        path = self.cell_file(cell_id)
        if not path.exists():
            return None
        return _check_record(path, read_json_object(path))

    def scan_records(self) -> tuple[list[dict[str, Any]], list[BadFile]]:
        """Every readable cell record, in file-name order, and the files that are not."""
        records, bad = [], []
        for path in sorted(self.cells_dir.glob("*.json")):
            try:
                records.append(_check_record(path, read_json_object(path)))
            except UnreadableFile as exc:
                bad.append(exc.bad)
        return records, bad

    def read_records(self) -> list[dict[str, Any]]:
        """Every readable cell record in the folder, in file-name order."""
        return self.scan_records()[0]

    def set_aside(self, cell_id: str) -> Path | None:
        """Rename a folder standing where a cell file belongs, so the cell can be written
        again without deleting anything; the new name, or ``None`` when it is not a folder."""
        path = self.cell_file(cell_id)
        if not path.is_dir():
            return None
        target = path.with_name(f"{path.name}.unreadable")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.unreadable{n}")
        path.rename(target)
        return target

    def read_timing(self, pair_id: str) -> dict[str, Any] | None:
        """One pair's timing record, or ``None`` when it is missing or unreadable (the pair
        is timed again)."""
        try:
            return read_json_object(self.timing_file(pair_id))
        except UnreadableFile:
            return None

    def read_timings(self) -> list[dict[str, Any]]:
        """Every readable timing record in the folder, in file-name order."""
        records = []
        for path in sorted(self.timing_dir.glob("*.json")):
            try:
                records.append(read_json_object(path))
            except UnreadableFile:
                continue
        return records

    def write_timing(self, record: dict[str, Any]) -> None:
        write_json(self.timing_file(record["pair_id"]), record)

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
