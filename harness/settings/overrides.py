"""Recipe overrides from the command line and the config file, type-checked against
:class:`~harness.plugin_api.task.Recipe`'s own fields, so a new Recipe field is overridable
with no new code: ``--recipe batch_size=32``, ``batch_size = 32`` under ``[tool.harness]`` or in a
``[tool.harness.recipe]`` table."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache
from typing import Any

from harness.errors import HarnessError, unknown_name
from harness.plugin_api.task import Recipe

#: Text that means "no value" for a field that may be None (``--recipe clip=none``).
NONE_WORDS = ("none", "null")

#: The most a run may set these to: beyond, a number is a typo, refused before anything starts
#: (1e20 epochs never end and overflow the tables' integer columns; a hidden size of 1e11 asks
#: for terabytes: the largest the ``--params`` search tries, 65,536, is the hidden size's cap).
MAXIMA = {
    "epochs": 1_000_000,
    "batch_size": 10_000_000,
    "hidden_size": 65_536,
    "num_layers": 1_000,
    "patience": 1_000_000,
    "threads": 4_096,
    "trials": 100_000,
}


def check_maximum(name: str, value: Any, source: str = "") -> None:
    """A one-line error when ``value`` of setting ``name`` is past :data:`MAXIMA`."""
    most = MAXIMA.get(name)
    if most is not None and isinstance(value, (int, float)) and value > most:
        where = f"{source}: " if source else ""
        raise HarnessError(f"{where}{name} must be at most {most:,}, not {value:,}")


@cache
def recipe_fields() -> dict[str, tuple[type, bool]]:
    """Each Recipe field's value type and whether it may be None (not ``search``: the space
    `harness tune` searches is the task's to declare, not a setting of a cell)."""
    hints = typing.get_type_hints(Recipe)
    found = {}
    for item in dataclasses.fields(Recipe):
        if item.name == "search":
            continue
        hint = hints[item.name]
        args = typing.get_args(hint)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = [a for a in args if a is not type(None)] if union else [hint]
        found[item.name] = (kinds[0], union and type(None) in args)
    return found


def parse_assignments(values: tuple[str, ...] | list[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` strings (as given to ``flag``) as a dict."""
    parsed = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise HarnessError(f"{flag} takes NAME=VALUE, not {value!r}")
        parsed[name.strip()] = text.strip()
    return parsed


def check_recipe_overrides(
    values: dict[str, Any], source: str, rules: bool = True
) -> dict[str, Any]:
    """``values`` checked against the Recipe's field types; a one-line error naming ``source``.

    Values must have the field's type already (TOML is typed: ``batch_size = "32"`` is an
    error, not a guess; command-line text goes through :func:`recipe_from_text` first); the
    text ``"none"`` is None for a field that may be None. ``rules``: also apply the Recipe's
    own rules (positive epochs, a known optimizer, ...).
    """
    if not isinstance(values, dict):
        raise HarnessError(f"{source}: the recipe must be a table of field = value")
    fields = recipe_fields()
    checked = {}
    for name, value in values.items():
        if name not in fields:
            error = unknown_name("recipe field", name, fields)
            raise HarnessError(f"{source}: {error}")
        checked[name] = _typed(name, value, *fields[name], source)
        check_maximum(name, checked[name], source)
    if not rules:
        return checked
    try:  # the Recipe's own rules (positive epochs, known optimizer, ...), on a stand-in
        dataclasses.replace(Recipe(epochs=1, batch_size=1, lr=1.0), **checked)
    except ValueError as exc:
        raise HarnessError(f"{source}: recipe {exc}") from None
    return checked


def _typed(name: str, value: Any, kind: type, optional: bool, source: str) -> Any:
    if optional and (value is None or isinstance(value, str) and value.lower() in NONE_WORDS):
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        hint = f" (or {NONE_WORDS[0]!r})" if optional else ""
        raise HarnessError(
            f"{source}: recipe field {name} takes {_article(kind.__name__)} "
            f"{kind.__name__}{hint}, not {value!r}"
        )
    if kind is float and not math.isfinite(value):
        raise HarnessError(f"{source}: recipe field {name} must be finite, not {value!r}")
    return value


def recipe_from_text(assignments: dict[str, str]) -> dict[str, Any]:
    """Command-line ``FIELD=VALUE`` text converted to each field's type where it parses;
    what does not parse stays text, for :func:`check_recipe_overrides` to name."""
    fields = recipe_fields()
    return {
        name: _parse(text, fields[name][0]) if name in fields else text
        for name, text in assignments.items()
    }


def _parse(text: str, kind: type) -> Any:
    """Command-line text as ``kind``; left as text when it does not parse (the type check
    that follows then names the field)."""
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text
    try:
        return kind(text)
    except ValueError:
        return text


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
