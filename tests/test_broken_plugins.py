"""Broken third-party plugins, each a real distribution on disk, loaded in a fresh interpreter.

Each case writes what pip would leave in site-packages (the module and a ``*.dist-info`` folder
with METADATA and entry_points.txt) into a temporary folder that a subprocess puts on its path.
The harness must record the plugin as broken, naming the package and the error, and every
built-in task and model must still load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import PLUGIN_API_VERSION

BUILTIN_TASKS = {"consecutive", "hello", "sine"}
BUILTIN_MODELS = {"scratch-rnn", "rnn", "rnncell", "embedding-rnn", "lstm", "gru"}

VALID_TASK = """
from dataclasses import dataclass

from harness import Recipe, Task, TaskData, TaskShape, hookimpl

@dataclass
class Copy(Task):
    name = "{name}"
    description = "copy the input"
    shape = TaskShape("values", 1, "values", 1)
    recipe = Recipe(epochs=1, batch_size=2, lr=0.01)

    def make_data(self, seed):
        import torch
        x = torch.randn(4, 3, 1, generator=torch.Generator().manual_seed(seed))
        return TaskData(x, x, x, x)
"""

VALID_MODEL = """
from harness import Model, hookimpl

def build(shape, hidden_size, num_layers):
    raise NotImplementedError

@hookimpl
def register_models(register):
    register(Model(name="{name}", description="a model", build=build))
"""

#: name -> (entry point name, module source, the error the BrokenPlugin must carry)
CASES = {
    "import-raises": (
        "import-raises",
        'raise RuntimeError("cannot find libfoo.so")\n',
        "RuntimeError: cannot find libfoo.so",
    ),
    "import-exits": (
        "import-exits",
        'import sys\n\nsys.exit("this plugin needs a GPU")\n',
        "SystemExit: this plugin needs a GPU",
    ),
    "hook-raises": (
        "hook-raises",
        "from harness import hookimpl\n\nHARNESS_API = 1\n\n@hookimpl\n"
        "def register_tasks(register):\n    raise KeyError('settings')\n",
        "KeyError: 'settings'",
    ),
    # "a-..." sorts before "hello": the built-in must keep its name all the same
    "duplicate-name": (
        "a-duplicate",
        VALID_TASK.format(name="hello") + "\n@hookimpl\ndef register_tasks(register):\n"
        "    register(Copy())\n",
        "task name 'hello' is already registered by hello (harness ",
    ),
    "not-a-task": (
        "not-a-task",
        "from harness import hookimpl\n\n@hookimpl\ndef register_tasks(register):\n"
        "    register({'name': 'dict-task'})\n",
        "registered {'name': 'dict-task'}, which is not a harness.Task",
    ),
    # the valid model beside the misspelled hook must not load either: the plugin is dropped
    "misspelled-hook": (
        "misspelled-hook",
        VALID_MODEL.format(name="typo-model")
        + "\n@hookimpl\ndef register_task(register):\n    pass\n",
        "unknown hook 'register_task'",
    ),
    "misspelled-model-hook": (
        "misspelled-model-hook",
        "from harness import hookimpl\n\n@hookimpl\ndef register_model(register):\n    pass\n",
        "unknown hook 'register_model'",
    ),
    "shape-raises": (
        "shape-raises",
        VALID_TASK.format(name="shapeless")
        + "\n    @property\n    def shape(self):\n        raise RuntimeError('no shape yet')\n"
        + "\n@hookimpl\ndef register_tasks(register):\n    register(Copy())\n",
        "cannot be inspected: RuntimeError: no shape yet",
    ),
    "future-api": (
        "future-api",
        "HARNESS_API = 2\n" + VALID_MODEL.format(name="future-model"),
        f"written for harness plugin API 2, but this harness speaks API {PLUGIN_API_VERSION}",
    ),
}

LOAD = """
import json
from harness.plugin_api.manager import load_plugins

registry = load_plugins()
print(json.dumps({
    "tasks": {n: [o.package, o.version] for (k, n), o in registry.origins.items() if k == "task"},
    "models": {n: [o.package, o.version] for (k, n), o in registry.origins.items() if k == "model"},
    "broken": [
        {"plugin": b.origin.plugin, "package": b.origin.package, "version": b.origin.version,
         "error": b.error}
        for b in registry.broken
    ],
}))
"""


def package_of(case: str) -> str:
    return f"harness-broken-{case}"


def install_fake(site: Path, case: str) -> None:
    """Write the distribution for ``case`` into ``site`` as pip would lay it out."""
    entry_point, source, _ = CASES[case]
    package, module = package_of(case), f"harness_broken_{case.replace('-', '_')}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{package.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{entry_point} = {module}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


def run_python(code: str, site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def load_in_subprocess(site: Path) -> dict:
    done = run_python(LOAD, site)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_builtins_intact(found: dict) -> None:
    assert set(found["tasks"]) >= BUILTIN_TASKS, found["tasks"]
    assert set(found["models"]) >= BUILTIN_MODELS, found["models"]
    for name in BUILTIN_TASKS:
        assert found["tasks"][name][0] == "harness"
    for name in BUILTIN_MODELS:
        assert found["models"][name][0] == "harness"


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_plugin_is_recorded_and_builtins_still_load(tmp_path, case):
    install_fake(tmp_path, case)
    found = load_in_subprocess(tmp_path)
    entry_point, _, error = CASES[case]
    assert len(found["broken"]) == 1, found["broken"]
    broken = found["broken"][0]
    assert (broken["plugin"], broken["package"], broken["version"]) == (
        entry_point,
        package_of(case),
        "0.3.1",
    )
    assert error in broken["error"]
    assert_builtins_intact(found)
    offered = {"typo-model", "future-model", "dict-task", "shapeless"}
    assert not offered & (set(found["tasks"]) | set(found["models"]))


def test_all_broken_plugins_at_once(tmp_path):
    for case in CASES:
        install_fake(tmp_path, case)
    found = load_in_subprocess(tmp_path)
    assert sorted(b["package"] for b in found["broken"]) == sorted(map(package_of, CASES))
    assert_builtins_intact(found)


def test_strict_mode_raises_naming_the_package(tmp_path):
    install_fake(tmp_path, "hook-raises")
    code = "from harness.plugin_api.manager import load_plugins\nload_plugins(strict=True)\n"
    done = run_python(code, tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert (
        "PluginError" in last and "harness-broken-hook-raises 0.3.1" in last and "KeyError" in last
    )


def test_blocklist_skips_a_broken_plugin(tmp_path):
    install_fake(tmp_path, "import-raises")
    code = "import os\nos.environ['HARNESS_DISABLE_PLUGINS'] = 'import-raises'\n" + LOAD
    found = json.loads(run_python(code, tmp_path).stdout)
    assert found["broken"] == []
    assert_builtins_intact(found)


def test_harness_list_shows_broken_plugins(tmp_path):
    for case in CASES:
        install_fake(tmp_path, case)
    done = run_python("", tmp_path, "-m", "harness", "list")
    assert done.returncode == 0, done.stderr
    assert "broken plugins" in done.stdout
    for case in CASES:
        assert package_of(case) in done.stdout
    assert "hello" in done.stdout and "gru" in done.stdout
