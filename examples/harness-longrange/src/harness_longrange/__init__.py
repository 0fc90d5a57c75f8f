"""harness-longrange: a third-party harness plugin package.

It adds the `parity` task (the running parity of a bit stream, a long-range dependency) and
the `tcn` model (a causal temporal convolution network) through entry points in the
``harness`` group (see pyproject.toml); the harness finds them once the package is installed.
Nothing here imports torch at import time.
"""

__version__ = "0.1.0"
