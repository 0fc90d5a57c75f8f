"""Numbers in tables: one notation per column, so a column reads down without switching
between 0.0123 and 1.23e-03."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

_NUMBER = r"-?(?:\d[\d,]*)?\.?\d+(?:e[+-]?\d+)?"
_WHOLE = re.compile(r"^-?\d[\d,]*$")
_CELL = re.compile(rf"^({_NUMBER})(?: ± ({_NUMBER}))?(\s.*)?$")


def _parse(text: str) -> tuple[float, float | None, str] | None:
    match = _CELL.match(text.strip())
    if not match:
        return None
    value, half, rest = match.groups()
    return (
        float(value.replace(",", "")),
        float(half.replace(",", "")) if half else None,
        rest or "",
    )


def format_value(value: Any, half: Any = math.nan, whole: bool = False) -> str:
    """One value (with ``± half``) for a table: whole with thousands, fixed or scientific by
    its size; ``whole`` keeps an integral float whole. :func:`one_notation` then makes a
    column agree."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    if value == 0:
        value = 0.0  # no "-0.0000"
    if isinstance(value, int) or abs(value) >= 1000 or (whole and float(value).is_integer()):
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:,.1f}"
    elif value != 0 and abs(value) < 0.01:
        text = f"{value:.2e}"
    else:
        text = f"{value:.4f}"
    if not (isinstance(half, float) and math.isnan(half)) and half is not None:
        text += f" ± {format_value(half)}"
    return text


def notation(values: list[float], whole: bool = False) -> str:
    """The format spec one column uses: thousands, fixed decimals or scientific; ``whole``
    (every value written as a whole number, e.g. seeds or counts) keeps it whole, zeros too."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    nonzero = [v for v in finite if v > 0]
    if not nonzero:
        return ",.0f" if whole else ".4f"
    low, high = min(nonzero), max(nonzero)
    if all(float(v).is_integer() for v in finite) and high >= 1:
        return ",.0f"
    if low < 0.01 or (high >= 1000 and low < 1) or high >= 1e7:
        return ".2e"
    if low >= 1000:
        return ",.0f"
    if low >= 10:
        return ",.1f"
    return ".4f"


def _half_spec(halves: list[float], spec: str) -> str:
    """The notation of a column's ``± half`` parts: the values' own where it shows every half
    (``0.0203 ± 0.0081``, not ``0.0203 ± 8.12e-03``; ``2 ± 0``), else one of their own."""
    if not halves or not any(halves):
        return spec  # "2 ± 0", not "2 ± 0.0000"
    if spec == ".4f" and all(h == 0 or abs(h) >= 5e-5 for h in halves):
        return spec  # every half shows at least one digit in four decimals
    return notation(halves)


def format_setting(value: Any) -> str:
    """A hyperparameter or setting (``lr``, ``weight_decay``, ``hidden_size``) as every table
    writes it: three significant digits for a float (``0.005``, ``1e+06``), an integer as it is.
    The leaderboard's hyperparameters column, the report's per-model settings and the recipe
    all use it, so ``lr`` reads the same wherever it appears."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value)) if value else "0"
    return f"{value:.3g}"


def one_notation(table: pd.DataFrame) -> pd.DataFrame:
    """Re-format every all-numeric column of a table of strings in a single notation.

    A column with any text that is not a number (a label, a flag, a `k/n` count) is left as
    it is; empty cells stay empty. Rank columns and the like (whole numbers) stay whole.
    """
    table = table.copy()
    for column in table.columns:
        cells = [str(v) for v in table[column]]
        parsed = [_parse(c) if c.strip() else None for c in cells]
        if not any(parsed) or any(p is None and c.strip() for p, c in zip(parsed, cells)):
            continue
        if any(p and p[2] for p in parsed):
            continue  # units or markers after the number (e.g. "1=", "1.2×"): keep as written
        whole = all(_WHOLE.match(c.strip()) for c, p in zip(cells, parsed) if p)
        spec = notation([p[0] for p in parsed if p], whole)
        halves = [p[1] for p in parsed if p and p[1] is not None]
        half_spec = _half_spec(halves, spec)
        out = []
        for p in parsed:
            if p is None:
                out.append("")
                continue
            value, half, _ = p
            text = format(0.0 if value == 0 else value, spec)
            if half is not None:
                text += f" ± {format(half, half_spec)}"
            out.append(text)
        table[column] = out
    return table
