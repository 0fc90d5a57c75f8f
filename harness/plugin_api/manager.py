"""The plugin manager: load entry points one by one, collect tasks and models, isolate failures.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin whose import raises, so we
loop over the entry points ourselves and wrap each load and each hook call in its own
try/except. A failure is recorded as a :class:`BrokenPlugin` and the rest keeps working;
``strict=True`` re-raises instead (for plugin authors' own test runs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from harness.loggers.contract import Logger
from harness.plugin_api import hookspecs
from harness.plugin_api.model import Model
from harness.plugin_api.names import name_problem
from harness.plugin_api.task import DIRECTIONS, Recipe, Task, TaskShape, dataclass_problem

ENTRY_POINT_GROUP = "harness"
#: The distribution whose entry points are the built-ins: they load first, so a third-party
#: plugin that registers a taken name is the one reported, never a built-in.
HOST = "harness"
#: Comma-separated entry-point names to load exclusively / to skip (like llm's LLM_LOAD_PLUGINS).
ENV_ALLOW = "HARNESS_PLUGINS"
ENV_BLOCK = "HARNESS_DISABLE_PLUGINS"


class PluginError(Exception):
    """A plugin broke the contract; the message names the plugin and its package."""


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from: entry-point name, distribution and version, module."""

    plugin: str
    package: str
    version: str
    module: str

    def __str__(self) -> str:
        return f"{self.plugin} ({self.package} {self.version})"


@dataclass(frozen=True)
class BrokenPlugin:
    origin: Origin
    error: str


class MissingDependency(ImportError):
    """Raised by a plugin whose optional package is not installed (see :func:`require`): the
    plugin is listed as unavailable with the line that installs it, not as broken."""

    def __init__(self, missing: list[str], install: str, offers: tuple[str, ...] = ()) -> None:
        self.missing, self.install, self.offers = missing, install, offers
        super().__init__(f"needs {', '.join(missing)}: {install}")


def require(*modules: str, install: str, offers: tuple[str, ...] = ()) -> None:
    """In a plugin's hook: raise :class:`MissingDependency` unless every module in ``modules``
    can be imported (checked without importing it). ``install``: the command that brings them,
    e.g. ``pip install 'harness[zoo]'``; ``offers``: the names the plugin would register, so
    asking for one says how to get it."""
    import importlib.util

    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise MissingDependency(missing, install, offers)


@dataclass(frozen=True)
class UnavailablePlugin:
    """A plugin whose optional package is missing: what it would offer and how to install it."""

    origin: Origin
    missing: tuple[str, ...]
    install: str
    offers: tuple[str, ...] = ()


@dataclass
class Registry:
    """Everything the installed plugins offer, with where each piece came from."""

    tasks: dict[str, Task] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    loggers: dict[str, Logger] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    plugins: list[Origin] = field(default_factory=list)
    unavailable: list[UnavailablePlugin] = field(default_factory=list)

    def origin(self, kind: str, name: str) -> Origin:
        return self.origins[(kind, name)]

    def install_hint(self, name: str) -> str | None:
        """How to get ``name`` when an unavailable plugin would offer it, else ``None``."""
        for item in self.unavailable:
            if name in item.offers:
                return f"{name} needs {', '.join(item.missing)}: {item.install}"
        return None


def _names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _entry_points() -> list[metadata.EntryPoint]:
    """The group's entry points: the harness's own first, then the rest by name."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    unique = {}
    for ep in found:  # the same dist can appear twice on odd sys.paths; keep the first
        unique.setdefault((ep.name, ep.value), ep)
    return sorted(unique.values(), key=lambda ep: (_origin(ep).package != HOST, ep.name))


def _origin(ep: metadata.EntryPoint) -> Origin:
    dist = getattr(ep, "dist", None)
    package = dist.metadata["Name"] if dist is not None else "unknown"
    version = dist.version if dist is not None else "?"
    return Origin(plugin=ep.name, package=package, version=version, module=ep.value)


def parse_api(value: Any) -> tuple[int, int] | None:
    """``HARNESS_API`` as (major, minor): an int is a major version (minor 0), a string
    ``"major.minor"``; anything else is ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, 0
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+)(?:\.(\d+))?", value.strip())
        if match:
            return int(match[1]), int(match[2] or 0)
    return None


def api_refusal(declared: Any) -> str | None:
    """Why a plugin written for ``declared`` cannot load here, or ``None`` when it can.

    Minor versions only add to the contract, so a plugin written for an older minor version of
    the same major one loads; one that needs a newer minor version, or another major, does not.
    """
    from harness.version import PLUGIN_API_VERSION

    version, speaks = parse_api(declared), parse_api(PLUGIN_API_VERSION)
    assert speaks is not None
    if version is None:
        return f'HARNESS_API must be an int or a "major.minor" string, not {declared!r}'
    if version[0] != speaks[0] or version[1] > speaks[1]:
        return (
            f"written for harness plugin API {declared}, but this harness speaks "
            f"API {PLUGIN_API_VERSION}; upgrade the plugin or harness"
        )
    return None


def load_plugins(
    *,
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
    strict: bool = False,
    extra: Iterable[tuple[str, ModuleType | object]] = (),
) -> Registry:
    """Discover plugins through entry points and collect what they register.

    ``allow``/``block`` narrow which entry points load (default: the ``HARNESS_PLUGINS`` and
    ``HARNESS_DISABLE_PLUGINS`` environment variables). ``extra`` adds in-memory plugins as
    ``(name, module_or_object)`` pairs, which go through the very same checks.
    """
    from harness.version import PLUGIN_API_VERSION

    allow_set = set(allow) if allow is not None else _names(ENV_ALLOW)
    block_set = set(block) if block is not None else (_names(ENV_BLOCK) or set())
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()

    def fail(origin: Origin, exc: BaseException | str) -> None:
        if strict:
            if isinstance(exc, BaseException):
                raise PluginError(f"plugin {origin}: {_one_line(exc)}") from exc
            raise PluginError(f"plugin {origin}: {exc}")
        message = exc if isinstance(exc, str) else _one_line(exc)
        registry.broken.append(BrokenPlugin(origin, message))

    def unavailable(origin: Origin, exc: MissingDependency) -> None:
        item = UnavailablePlugin(origin, tuple(exc.missing), exc.install, tuple(exc.offers))
        registry.unavailable.append(item)

    loaded: list[tuple[Origin, Any]] = []
    for ep in _entry_points():
        if (allow_set is not None and ep.name not in allow_set) or ep.name in block_set:
            continue
        origin = _origin(ep)
        try:
            loaded.append((origin, ep.load()))
        except MissingDependency as exc:
            unavailable(origin, exc)
        except (Exception, SystemExit) as exc:  # a plugin's import must not take the host down
            fail(origin, exc)
    for name, obj in extra:
        # a module's name, or for an object the module its class lives in (so an error
        # raised in that module's code names this plugin)
        module = getattr(obj, "__name__", None) or type(obj).__module__
        loaded.append((Origin(name, "(in-process)", "", module), obj))

    for origin, plugin in loaded:
        refusal = api_refusal(getattr(plugin, "HARNESS_API", PLUGIN_API_VERSION))
        if refusal:
            fail(origin, refusal)
            continue
        try:
            pm.register(plugin, name=origin.plugin)
        except Exception as exc:
            fail(origin, exc)
            continue
        registry.plugins.append(origin)

    while True:  # check_pending reports one misspelled hook at a time: drop each such plugin
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            bad = getattr(exc, "plugin", None)
            name = pm.get_name(bad) if bad is not None else None
            origin = next((o for o in registry.plugins if o.plugin == name), None)
            if origin is None:
                raise
            pm.unregister(bad)
            registry.plugins.remove(origin)
            fail(origin, f"implements an unknown hook: {_one_line(exc)}")

    by_name = {o.plugin: o for o in registry.plugins}
    for hook_name, kind, expected in (
        ("register_tasks", "task", Task),
        ("register_models", "model", Model),
        ("register_loggers", "logger", Logger),
    ):
        table: dict[str, Any] = getattr(registry, f"{kind}s")
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            origin = by_name[impl.plugin_name]
            offered: list[Any] = []
            try:
                impl.function(register=offered.append)
            except MissingDependency as exc:  # an optional package is not installed
                unavailable(origin, exc)
                continue
            except (Exception, SystemExit) as exc:  # a hook that raises registers nothing
                fail(origin, exc)
                continue
            for item in offered:
                problem = _validate(item, kind, expected)
                if problem is None and item.name in table:
                    other = registry.origins[(kind, item.name)]
                    problem = (
                        f"{kind} name {item.name!r} is already registered by {other}; "
                        "rename one of them or disable a plugin with HARNESS_DISABLE_PLUGINS"
                    )
                if problem is not None:
                    fail(origin, problem)
                    continue
                table[item.name] = item
                registry.origins[(kind, item.name)] = origin
    return registry


def _validate(item: Any, kind: str, expected: type) -> str | None:
    """Why ``item`` is not a valid task/model, or ``None``. Never raises: a task property
    that raises makes the plugin broken, not the host."""
    try:
        return _problem(item, kind, expected)
    except Exception as exc:
        return f"registered a {kind} that cannot be inspected: {_one_line(exc)}"


def _problem(item: Any, kind: str, expected: type) -> str | None:
    if not isinstance(item, expected):
        return f"registered {_short_repr(item)}, which is not a harness.{expected.__name__}"
    name = getattr(item, "name", "")
    problem = name_problem(name)
    if problem is not None:
        return f"registered a {kind} with an invalid {problem}"
    if kind == "logger" and not callable(item.open):
        return f"logger {name!r}: open must be a function of the run's LogContext"
    if kind == "task":
        vanishing = dataclass_problem(type(item))  # the kit's rule and words
        if vanishing:
            return f"task {name!r}: {vanishing}"
        for attr, cls in (("shape", TaskShape), ("recipe", Recipe)):
            value = getattr(item, attr, None)
            if not isinstance(value, cls):
                return f"task {name!r} declares no {attr} (a harness.{cls.__name__}), got {value!r}"
        scored = item.scored_steps
        if scored is not None and (not isinstance(scored, int) or scored < 1):
            return f"task {name!r}: scored_steps must be None or a positive int, not {scored!r}"
        if not isinstance(item.in_default_grid, bool):
            return f"task {name!r}: in_default_grid must be True or False"
        directions = item.metric_directions
        if not isinstance(directions, dict) or any(
            d not in DIRECTIONS for d in directions.values()
        ):
            return (
                f"task {name!r}: metric_directions must map metric keys to 'higher' or 'lower', "
                f"not {directions!r}"
            )
    return None


def _short_repr(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def plugin_distributions() -> dict[str, str]:
    """``{distribution: version}`` of every installed package offering ``harness`` entry
    points, this harness included: what a cluster node must match for its cells to mean the
    same thing as the driver's."""
    return {origin.package: origin.version for origin in map(_origin, _entry_points())}


def distribution_differences(here: dict[str, str], there: dict[str, str]) -> list[str]:
    """Each plugin distribution whose presence or version differs, in words."""
    problems = []
    for package in sorted(set(here) | set(there)):
        mine, theirs = here.get(package), there.get(package)
        if mine == theirs:
            continue
        if theirs is None:
            problems.append(f"{package} {mine} is not installed there")
        elif mine is None:
            problems.append(f"{package} {theirs} is installed there but not here")
        else:
            problems.append(f"{package} is {theirs} there but {mine} here")
    return problems
