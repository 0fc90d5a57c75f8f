"""Sweeps: ``--sweep NAME=V1,V2,...`` (repeatable) or ``[tool.harness.sweep]``, every
combination of the values a *variant* of the grid.

``NAME`` is a task's option (``mqar.length``), a model's option (``transformer.heads``), a
recipe field (``hidden_size``, ``lr``, ``epochs``, ...) or ``params``. A name applies only to
the cells it can change: ``mqar.length`` to mqar's cells, ``transformer.heads`` to the
transformer's, a recipe field and ``params`` to every cell. So a cell's variant holds just the
names that apply to it, and a sweep over one task's option does not repeat the other tasks'
cells. Zoology's headline figure (accuracy against width, a panel per sequence length) is
``--sweep mqar.length=64,128,256 --sweep hidden_size=32,64,128``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.settings.overrides import check_recipe_overrides, recipe_fields, recipe_from_text

#: At most this many variants: a sweep is a grid, and grids grow fast.
MAX_VARIANTS = 256


@dataclass(frozen=True)
class Axis:
    """One swept name: what it sets, on which plugin, and its values (typed for recipe fields
    and params; as given for plugin options, which the plugin's own options type-check)."""

    name: str
    values: tuple[Any, ...]
    kind: str  # "task", "model", "recipe" or "params"
    target: str | None = None  # the task or model of an option
    field: str | None = None

    def applies(self, task: str, model: str) -> bool:
        """Whether this name changes a cell of ``task`` x ``model``."""
        if self.kind == "task":
            return self.target == task
        if self.kind == "model":
            return self.target == model
        return True


def parse_sweep_flags(values: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """``NAME=V1,V2,...`` strings (repeatable ``--sweep``) as a dict of lists of text."""
    sweep: dict[str, list[str]] = {}
    for value in values:
        name, sep, listed = value.partition("=")
        items = [v.strip() for v in listed.split(",") if v.strip()]
        if not sep or not name.strip() or not items:
            raise HarnessError(f"--sweep takes NAME=V1,V2,..., not {value!r}")
        if name.strip() in sweep:
            raise HarnessError(f"--sweep {name.strip()} is given twice; list its values once")
        sweep[name.strip()] = items
    return sweep


def axes(sweep: dict[str, list[Any]], tasks: Any, models: Any) -> list[Axis]:
    """The sweep's names classified against the installed ``tasks`` and ``models`` (name ->
    plugin); an unknown name, an empty or repeated list of values is one line."""
    found = []
    for name, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise HarnessError(f"sweep {name}: give a non-empty list of values, not {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise HarnessError(f"sweep {name}: a value is listed twice ({values!r})")
        owner, dot, field = name.partition(".")
        if dot:
            if owner in tasks and owner in models:
                raise HarnessError(f"sweep {name}: {owner!r} is both a task and a model")
            if owner not in tasks and owner not in models:
                raise HarnessError(
                    f"sweep {name}: {owner!r} is no installed task or model (see `harness list`)"
                )
            kind = "task" if owner in tasks else "model"
            found.append(Axis(name, tuple(values), kind, owner, field))
        elif name == "params":
            typed = [_typed_params(v) for v in values]
            found.append(Axis(name, tuple(typed), "params"))
        elif name in recipe_fields():
            typed = [_typed_recipe(name, v) for v in values]
            found.append(Axis(name, tuple(typed), "recipe", field=name))
        else:
            known = ", ".join(sorted(recipe_fields()))
            raise HarnessError(
                f"sweep {name}: not a TASK.FIELD or MODEL.FIELD option, params, or a recipe "
                f"field ({known})"
            )
    count = math.prod(len(a.values) for a in found)
    if count > MAX_VARIANTS:
        raise HarnessError(f"the sweep makes {count:,} variants; at most {MAX_VARIANTS} at once")
    return found


def _typed_recipe(name: str, value: Any) -> Any:
    typed = recipe_from_text({name: value})[name] if isinstance(value, str) else value
    check_recipe_overrides({name: typed}, f"--sweep {name}")
    return typed


def _typed_params(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or str(number) != str(value).strip():
        raise HarnessError(f"sweep params: each value must be a positive integer, not {value!r}")
    return number


def variants(found: list[Axis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, as name -> value, in the order given; ``[{}]``
    without a sweep (the one plain grid)."""
    names = [a.name for a in found]
    return [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in found))]


def cell_variant(found: list[Axis], variant: dict[str, Any], task: str, model: str) -> dict:
    """The part of ``variant`` that applies to a cell of ``task`` x ``model``."""
    return {a.name: variant[a.name] for a in found if a.name in variant and a.applies(task, model)}


def split_variant(
    found: list[Axis], variant: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]], int | None]:
    """What a variant sets: recipe overrides, task options, model options and params."""
    recipe: dict[str, Any] = {}
    task_options: dict[str, dict[str, Any]] = {}
    model_options: dict[str, dict[str, Any]] = {}
    params = None
    for axis in found:
        if axis.name not in variant:
            continue
        value = variant[axis.name]
        if axis.kind == "recipe":
            recipe[axis.name] = value
        elif axis.kind == "params":
            params = value
        elif axis.kind == "task":
            task_options.setdefault(axis.target, {})[axis.field] = value
        else:
            model_options.setdefault(axis.target, {})[axis.field] = value
    return recipe, task_options, model_options, params
