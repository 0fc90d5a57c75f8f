"""harness: a plugin-based benchmark harness for sequence models.

The core knows nothing of any particular task or model: tasks and models arrive as plugins
through the ``harness`` entry-point group, built-ins included.
"""

from harness.errors import HarnessError
from harness.loggers.contract import Logger
from harness.plugin_api.hookspecs import hookimpl
from harness.plugin_api.manager import MissingDependency, require
from harness.plugin_api.model import Model
from harness.plugin_api.task import (
    IGNORE_INDEX,
    Baseline,
    Choice,
    LogUniform,
    Recipe,
    Task,
    TaskData,
    TaskShape,
)
from harness.version import PLUGIN_API_VERSION, __version__  # noqa: F401 (re-exported)

__all__ = [
    "Baseline",
    "Choice",
    "HarnessError",
    "IGNORE_INDEX",
    "LogUniform",
    "Logger",
    "MissingDependency",
    "require",
    "hookimpl",
    "Model",
    "PLUGIN_API_VERSION",
    "Recipe",
    "Task",
    "TaskData",
    "TaskShape",
    "run",
    "tune",
]


def run(*args, **kwargs):
    """Run a grid and return the per-cell table as a pandas DataFrame (see ``harness.api.run``)."""
    from harness.api import run as _run

    return _run(*args, **kwargs)


def tune(*args, **kwargs):
    """Tune every task x model pair, re-run the best on the seeds (see ``harness.api.tune``).

    Needs optuna (``pip install 'harness[tune]'``)."""
    from harness.api import tune as _tune

    return _tune(*args, **kwargs)
