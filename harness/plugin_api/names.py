"""The one rule for plugin-provided names: task and model names become file names and cell ids.

A name such as ``../x`` would write outside the run folder, ``a/b`` would nest a record that
the report never finds, a NUL byte or 300 characters crash ``open()``. Both the plugin manager
(at registration) and the conformance kit (``harness.testing``) apply :func:`name_problem`, so
a plugin the kit passes is a plugin the harness loads, and no path is built from a name that
did not pass it.
"""

from __future__ import annotations

import re
from typing import Any

#: Letters, digits, '.', '-' and '_', starting with a letter or digit (so never '.' or '..').
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Far below every file system's 255-byte limit once ``__``, the other name and ``__seedN.json``
#: are added to make a cell file name.
MAX_LENGTH = 64
#: Names Windows reserves for devices, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a task or model, or ``None`` when it can."""
    if not isinstance(name, str):
        return f"name {name!r} must be a string"
    if len(name) > MAX_LENGTH:
        return f"name {name[:20]!r}... is {len(name)} characters long (at most {MAX_LENGTH})"
    if not NAME.fullmatch(name):
        return (
            f"name {name!r} must be letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )
    if "__" in name:
        return f"name {name!r} must not contain '__', which separates the parts of a cell id"
    if name.endswith(".") or name.split(".")[0].lower() in _RESERVED:
        return f"name {name!r} is not a portable file name"
    return None


def checked_name(kind: str, name: Any) -> str:
    """``name`` if it passes the rule, else :class:`~harness.errors.HarnessError`: call before
    building a path from a name that came from the command line or a file."""
    from harness.errors import HarnessError

    problem = name_problem(name)
    if problem is not None:
        raise HarnessError(f"invalid {kind} {problem}")
    return name
