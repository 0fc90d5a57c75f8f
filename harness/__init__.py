"""harness: a plugin-based benchmark harness for sequence models.

The core knows nothing of any particular task or model: tasks and models arrive as plugins
through the ``harness`` entry-point group, built-ins included.
"""

from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.model import Model
from harness.task import Baseline, Recipe, Task, TaskData, TaskShape

__version__ = "0.1.0"

#: The plugin contract this harness speaks, "major.minor". A plugin may declare ``HARNESS_API``
#: in its module (an int major, or a "major.minor" string); another major version, or a newer
#: minor one, is refused with a clear message instead of failing mid-training. Minor versions
#: only add: 1.1 added the validation split (``TaskData.val_inputs``/``val_targets``).
PLUGIN_API_VERSION = "1.1"

__all__ = [
    "Baseline",
    "HarnessError",
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
