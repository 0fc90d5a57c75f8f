"""harness-longrange: a third-party harness plugin package.

It adds the `adding` task (long-range memory) and the `indrnn` model through entry points in
the ``harness`` group (see pyproject.toml); the harness finds them once the package is
installed. Nothing here imports torch at import time.
"""

__version__ = "0.1.0"
