"""`harness.hookspecs` is `harness.plugin_api.hookspecs` (moved in 0.1 with the layered layout):
the old name stays, the very same module, for plugins written against API 1.1 (`from
harness.hookspecs import ...`)."""

import sys

from harness.plugin_api import hookspecs as _moved

sys.modules[__name__] = _moved
