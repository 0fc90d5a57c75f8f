"""Files on disk: atomic writes, so an interrupted run never leaves a corrupt file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: A temporary file older than this is stale whoever wrote it: no single write takes an hour.
STALE_AFTER_SECONDS = 3600


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    mkstemp creates the file 0600; it gets the permissions ``open()`` would have given it
    (0666 less the umask), so a shared results folder stays readable like every other file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{os.getpid()}."  # the writer's pid: see is_stale_temp
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_stale_temp(path: Path, max_age: float = STALE_AFTER_SECONDS) -> bool:
    """Whether a temporary file of :func:`write_atomic` was left by a writer that is gone.

    Its name carries the writer's pid: stale when that process no longer exists, or (in case
    the pid was reused, or on Windows where a pid cannot be probed safely) when the file is
    older than ``max_age`` seconds. A live writer's in-flight file is never stale.
    """
    import time

    parts = path.name.removesuffix(".tmp").rsplit(".", 2)
    pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > max_age:
        return True
    if pid is None or os.name == "nt" or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    return False


def write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=2, default=_jsonable).encode())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def write_frame(frame: Any, stem: Path) -> None:
    """A pandas DataFrame as ``stem.csv`` and ``stem.parquet``, each written atomically."""
    import io

    write_atomic(stem.with_suffix(".csv"), csv_bytes(frame))
    buffer = io.BytesIO()
    parquet_ready(frame).to_parquet(buffer, index=False)
    write_atomic(stem.with_suffix(".parquet"), buffer.getvalue())


def csv_bytes(frame: Any) -> bytes:
    """``frame`` as CSV, with plugin text that a spreadsheet would run as a formula defused
    (see :mod:`harness.storage.escape`); Parquet keeps the values as they are."""
    from harness.storage.escape import csv_safe

    return csv_safe(frame).to_csv(index=False).encode()


def parquet_ready(frame: Any) -> Any:
    """``frame`` with every column Arrow cannot type stored as text.

    Tasks' own metrics share the ``task_<key>`` columns of one table, so two tasks may fill one
    column with different types (one task's boolean ``exact``, another's float ``exact``). CSV
    takes that as it is; Parquet needs one type per column, so such a column becomes text there
    (missing values stay missing) rather than the whole table failing to write. Every column
    is tried, whatever its dtype: not only ``object`` holds mixed values. A ``category``
    column may too, and Arrow would silently turn its ``True`` into ``1.0``, so it is tried
    value by value; pandas' string dtypes hold only text and pass as they are.
    """
    import pandas as pd
    import pyarrow as pa

    mixed = []
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        try:
            pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            mixed.append(column)
    if not mixed:
        return frame
    frame = frame.copy()
    for column in mixed:
        frame[column] = frame[column].astype(object).map(_as_text, na_action="ignore")
    return frame


def _as_text(value: Any) -> str | None:
    if isinstance(value, float) and value != value:  # NaN: missing
        return None
    return value if isinstance(value, str) else str(value)


def _umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
