"""`harness.metrics` is `harness.training.metrics` (moved in 0.1 with the layered layout): the
old name stays, the very same module, for plugins written against API 1.1 (`from
harness.metrics import predict`, as the example plugin's adding task did)."""

import sys

from harness.training import metrics as _moved

sys.modules[__name__] = _moved
