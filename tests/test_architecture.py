"""The package's layers, read from the code: no import circles, and no import from a lower
layer up to a higher one unless its line says why (``# upward: <reason>``).

Every import counts, also those inside functions (they run too, only later); imports under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "harness"

#: Lower numbers are lower layers (faces > session/tuning > settings > grid/report/loggers >
#: training/storage > plugin_api > errors/version). See docs/architecture.md.
LAYERS = {
    "harness.errors": 0,
    "harness.version": 0,
    "harness.plugin_api": 1,
    # what a logger plugin registers: the plugin manager checks registrations against it
    "harness.loggers.contract": 1,
    "harness.training": 2,
    "harness.storage": 2,
    "harness.grid": 3,
    "harness.report": 3,
    "harness.loggers": 3,
    "harness.settings": 4,
    "harness.session": 5,
    "harness.tuning": 5,
    "harness.testing": 6,
    "harness.api": 7,
    "harness.cli": 7,
    "harness.predict": 7,
    "harness.benchplot": 7,
    "harness.__main__": 7,
    # the 1.1 names of modules that moved: aliases for plugins written against them
    "harness.task": 7,
    "harness.model": 7,
    "harness.hookspecs": 7,
    "harness.plugins": 7,
    "harness.names": 7,
    "harness.metrics": 7,
    "harness": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    while module not in LAYERS:
        module, _, _ = module.rpartition(".")
        if not module:
            raise KeyError
    return LAYERS[module]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int, str]]:
    """``(imported module, line number, source line)`` for each harness import of ``path``."""
    source = path.read_text()
    tree = ast.parse(source)
    skipped = _type_checking_lines(tree)
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                targets.append(sub if sub in known else node.module)
        for target in targets:
            if (target == "harness" or target.startswith("harness.")) and target in known:
                found.append((target, node.lineno, lines[node.lineno - 1]))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {t for t, _, _ in imports(path, known)} - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert cycles(graph()) == []


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if _has_no_layer(name)]
    assert unplaced == []


def _has_no_layer(name: str) -> bool:
    try:
        layer(name)
    except KeyError:
        return True
    return False


def test_no_unexplained_upward_import():
    known = modules()
    upward = [
        f"{name}:{line} imports {target}"
        for name, path in known.items()
        for target, line, text in imports(path, known)
        if layer(target) > layer(name) and "# upward:" not in text
    ]
    assert upward == []


def test_the_checker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_checker_reads_imports_inside_functions():
    # session imports the executors only inside Session.timing_phase, never at the top
    assert "harness.grid.executors" in graph()["harness.session"]


def test_the_checker_skips_type_checking_imports_and_reads_function_ones(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from harness.api import run\n"
        "def f():\n    from harness.session import Session\n"
    )
    known = modules()
    assert [target for target, _, _ in imports(source, known)] == ["harness.session"]


@pytest.mark.parametrize(
    "old, new",
    [
        ("harness.task", "harness.plugin_api.task"),
        ("harness.model", "harness.plugin_api.model"),
        ("harness.hookspecs", "harness.plugin_api.hookspecs"),
        ("harness.plugins", "harness.plugin_api.manager"),
        ("harness.names", "harness.plugin_api.names"),
        ("harness.metrics", "harness.training.metrics"),
    ],
)
def test_the_1_1_module_names_still_import_the_same_objects(old, new):
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)
    from harness import Baseline, Task  # what a 1.1 plugin imports either way

    assert importlib.import_module("harness.task").Baseline is Baseline
    assert importlib.import_module("harness.task").Task is Task
