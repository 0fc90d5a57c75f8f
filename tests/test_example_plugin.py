"""Third-party plugin packages, installed with pip for real, as a user would.

``examples/harness-longrange`` is pip-installed into this environment for the module's tests and
uninstalled afterwards, then found through its entry points like any user's package. The worked
example of docs/plugins.md is extracted from the page, pip-installed into a folder of its own,
and its own test suite run against it, so the page stays correct.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugin_api.manager import Origin, load_plugins
from harness.testing import check_import_is_light, check_model, check_task

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "harness-longrange"
PACKAGE, VERSION = "harness-longrange", "0.1.0"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    return {**env, "COLUMNS": "200", **extra}


def installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def longrange(tmp_path_factory):
    """harness-longrange installed into this environment with pip, uninstalled at the end.

    Module-scoped, so the rest of the session sees only the built-ins again. Built from a copy,
    so the build leaves nothing in the source tree. When the package is already installed (a
    developer's ``pip install -e``), that installation is used and left alone.
    """
    if installed(PACKAGE):
        yield
        return
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = [*PIP, "install", "--no-build-isolation", "--no-deps", str(source)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    importlib.invalidate_caches()
    try:
        yield
    finally:
        subprocess.run([*PIP, "uninstall", "-y", PACKAGE], capture_output=True, timeout=300)
        importlib.invalidate_caches()


@pytest.fixture(scope="module")
def plugins(longrange):
    return load_plugins()


def test_entry_points_register_the_task_and_model_with_their_package(plugins):
    assert plugins.broken == []
    assert plugins.origin("task", "parity") == Origin(
        "parity", PACKAGE, VERSION, "harness_longrange.parity"
    )
    assert plugins.origin("model", "tcn") == Origin(
        "tcn", PACKAGE, VERSION, "harness_longrange.tcn"
    )
    assert {"hello", "gru"} <= set(plugins.tasks) | set(plugins.models)  # built-ins beside it
    # the built-in adding task is the harness's own: the package no longer registers one
    assert plugins.origin("task", "adding").package == "harness"


def test_the_task_passes_the_kit(plugins):
    check_task(plugins.tasks["parity"])


def test_its_task_gives_no_validation_split_so_one_is_carved_and_recorded(plugins):
    from harness.session import task_meta

    meta = task_meta(plugins, "parity", {"train_size": 50, "test_size": 10}, [0])
    assert meta.validation == (
        "carved from the training data: its last 5 of 50 sequences (10%), not trained on"
    )


def test_the_model_passes_the_kit(plugins):
    check_model(plugins.models["tcn"])


@pytest.mark.parametrize("module", ["harness_longrange.parity", "harness_longrange.tcn"])
def test_loading_the_plugin_does_not_import_torch(longrange, module):
    check_import_is_light(module)


def test_a_fresh_interpreter_finds_it(longrange):
    code = (
        "import json, sys\nfrom harness.plugin_api.manager import load_plugins\n"
        "r = load_plugins()\n"
        "print(json.dumps([str(r.origin('task', 'parity')), str(r.origin('model', 'tcn')), "
        "'torch' in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    expected = [f"parity ({PACKAGE} {VERSION})", f"tcn ({PACKAGE} {VERSION})", False]
    assert json.loads(done.stdout) == expected


def test_harness_list_shows_it(longrange):
    done = subprocess.run(
        [sys.executable, "-m", "harness", "list"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in ("parity", "tcn"):  # a table row: its name first, then its package
        rows = [line for line in done.stdout.splitlines() if re.match(rf"\W*{name}\s", line)]
        assert len(rows) == 1 and f"{PACKAGE} {VERSION}" in rows[0], done.stdout
        assert ("no (-t or --suite)" in rows[0]) == (name == "parity")  # out of the default grid


def test_the_heavy_task_runs_only_when_named(plugins):
    from harness.session import resolve_names
    from harness.settings.config import RunConfig

    tasks, models = resolve_names(RunConfig(), plugins)
    assert "parity" not in tasks and {"hello", "sine"} <= set(tasks) and "tcn" in models
    assert resolve_names(RunConfig(tasks=["parity"]), plugins)[0] == ["parity"]


def test_narrowing_to_the_plugin_by_name(longrange):
    narrowed = load_plugins(allow=["parity", "tcn"])
    assert set(narrowed.tasks) == {"parity"} and set(narrowed.models) == {"tcn"}
    assert "parity" not in load_plugins(block=["parity"]).tasks


def test_its_own_test_suite_passes(longrange, tmp_path):
    """The package's tests use the one-line kit and the pytest11 fixtures, as an author would."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\b(\d+) passed", done.stdout) and "failed" not in done.stdout


# ---- the worked example of docs/plugins.md --------------------------------------------------

FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def extract_worked_example(target: Path) -> Path:
    """Write every ``file=`` code block of docs/plugins.md under ``target``."""
    blocks = FILE_BLOCK.findall((ROOT / "docs" / "plugins.md").read_text())
    assert len(blocks) >= 5, "docs/plugins.md lost its worked example"
    for name, text in blocks:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target / blocks[0][0].split("/")[0]


def test_docs_worked_example_installs_and_passes_its_tests(tmp_path):
    package = extract_worked_example(tmp_path / "src")
    site = tmp_path / "site"  # its own folder, so this environment is left as it was
    install = [*PIP, "install", "--no-build-isolation", "--no-deps", "--target", str(site)]
    done = subprocess.run([*install, str(package)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    env = clean_env(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(package / "tests"),
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:]
    # the kit ran over both plugins: task, model and a light-import check for each module
    assert re.search(r"\b5 passed", done.stdout), done.stdout[-2000:]
