"""Plugin-provided text made safe for the files a run writes: CSV and markdown.

A task description, a baseline name, an error message or a string metric comes from a
plugin. In a CSV a value starting with ``=``, ``+``, ``-`` or ``@`` is run as a formula by
spreadsheet programs (CSV injection, OWASP); in markdown a ``|`` splits a table cell and a
leading ``#`` or newline starts a new block.
"""

from __future__ import annotations

import re
from typing import Any

#: What a spreadsheet takes as the start of a formula (OWASP's list, tab and CR included).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Characters with a meaning in inline markdown, escaped with a backslash (CommonMark).
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|#!~])")


def csv_cell(value: Any) -> Any:
    """``value``, with a text that a spreadsheet would run as a formula prefixed by ``'``.

    Numbers are left alone, and so is text that reads as a number (``-0.5``), so negative
    values stay values.
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def csv_safe(frame: Any) -> Any:
    """A copy of a pandas DataFrame with :func:`csv_cell` applied to its text cells and headers."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    text = [c for c in frame.columns if is_object_dtype(frame[c]) or is_string_dtype(frame[c])]
    if not text and not any(isinstance(c, str) and csv_cell(c) != c for c in frame.columns):
        return frame
    frame = frame.copy()
    for column in text:
        frame[column] = frame[column].map(csv_cell)
    return frame.rename(columns=csv_cell)


def md_text(value: Any) -> str:
    """Plugin text as one markdown paragraph line: no block starts, inline syntax escaped."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))


def md_cell(value: Any) -> str:
    """A markdown table cell: one line, no ``|`` that would split the cell."""
    return " ".join(str(value).split()).replace("\\", "\\\\").replace("|", "\\|")


def md_code(value: Any) -> str:
    """Inline code for a plugin-given name, fenced so a backtick inside cannot end it early."""
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_table(frame: Any) -> str:
    """A pandas DataFrame as a markdown table whose cells (plugin names, labels, errors, settings)
    cannot break its rows: every cell and header through :func:`md_cell`."""
    safe = frame.astype(object).where(frame.notna(), "").map(md_cell)
    safe.columns = [md_cell(c) for c in frame.columns]
    return safe.to_markdown(index=False, disable_numparse=True)
