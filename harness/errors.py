"""Errors the command line turns into one line and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Bad input from the user: shown as one line, exit status 2, never a traceback."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> HarnessError:
    """An error for an unknown task/model name that suggests the closest known one."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return HarnessError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known) or 'none'})")
