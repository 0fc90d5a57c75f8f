"""Run the whole kit over everything one installed package registers, as pytest cases.

A plugin author's test suite needs one line::

    from harness.testing import conformance_tests

    test_conformance = conformance_tests("my-harness-plugin")

which collects one test per task, per model and per plugin module of that distribution (plus a
failing one per plugin of it that did not load, and one if it registers nothing at all).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from harness.testing.common import fail

#: Modules a plugin must not import at import time: they make `harness --help` slow.
HEAVY = ("torch", "matplotlib", "pandas")


def check_import_is_light(module: str, heavy: Collection[str] = HEAVY) -> None:
    """Import ``module`` in a fresh interpreter and fail if that imported a heavy library.

    Loading plugins happens on every ``harness`` command, ``--help`` and ``list`` included, so a
    plugin imports torch inside the functions that need it, not at its top.
    """
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {list(heavy)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        fail(f"module {module!r}", f"import failed: {last}")
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    if loaded:
        fail(
            f"module {module!r}",
            f"importing it imports {', '.join(loaded)}; import heavy libraries inside the "
            "functions that use them (build, make_data, evaluate)",
        )


def declared_api(target: str) -> Any:
    """The ``HARNESS_API`` a plugin declares, from its entry point's target (``module`` or
    ``module:object``, already imported by the plugin manager); ``None`` when it says none."""
    module_name, _, attribute = target.partition(":")
    plugin: Any = sys.modules.get(module_name)
    for part in attribute.split(".") if attribute else []:
        plugin = getattr(plugin, part, None)
    return getattr(plugin, "HARNESS_API", None)


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): case and -_. runs do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Case:
    """One conformance check, run by calling it; ``id`` names it in pytest's output."""

    id: str
    run: Callable[[], None]

    def __call__(self) -> None:
        self.run()


def conformance_cases(
    package: str,
    *,
    fixed_data: Collection[str] = (),
    registry: Any = None,
    light_imports: bool = True,
) -> list[Case]:
    """Every check for what distribution ``package`` registers, as callables.

    ``fixed_data`` names tasks whose data does not change with the seed by design.
    """
    from harness.plugin_api.manager import load_plugins
    from harness.testing.models import check_model
    from harness.testing.tasks import check_task

    registry = registry if registry is not None else load_plugins()
    wanted = canonical(package)
    cases: list[Case] = []
    for broken in registry.broken:
        if canonical(broken.origin.package) == wanted:
            message = f"plugin {broken.origin} did not load: {broken.error}"
            cases.append(
                Case(f"broken-{broken.origin.plugin}", lambda m=message: fail("harness", m))
            )
    for (kind, name), origin in sorted(registry.origins.items()):
        if canonical(origin.package) != wanted:
            continue
        if kind == "task":
            task = registry.tasks[name]
            seed_varies = name not in fixed_data
            api = declared_api(origin.module)
            cases.append(
                Case(
                    f"task-{name}",
                    lambda t=task, v=seed_varies, a=api: check_task(t, seed_varies=v, api=a),
                )
            )
        elif kind == "model":  # a logger has no kit check beyond its module's light import
            cases.append(Case(f"model-{name}", lambda m=registry.models[name]: check_model(m)))
    if light_imports:
        for origin in registry.plugins:
            if canonical(origin.package) == wanted and origin.module:
                module = origin.module.split(":")[0]
                cases.append(
                    Case(f"import-{origin.plugin}", lambda m=module: check_import_is_light(m))
                )
    if not cases:
        names = sorted({canonical(o.package) for o in registry.origins.values()})
        message = (
            f"no plugin of package {package!r} is loaded (packages with plugins: "
            f"{', '.join(names) or 'none'}); is it installed (pip install -e .), with entry "
            "points in the 'harness' group, and not narrowed out by HARNESS_PLUGINS?"
        )
        cases.append(Case("nothing-registered", lambda: fail("harness", message)))
    return cases


def conformance_tests(package: str, **options: Any) -> Callable[[Case], None]:
    """A pytest test function parametrized over :func:`conformance_cases` for ``package``."""
    import pytest

    cases = conformance_cases(package, **options)

    @pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in cases])
    def test_conformance(case: Case) -> None:
        case()

    return test_conformance
