"""Timing helpers shared by the benchmark modules: one clock discipline for every figure.

Every timed function ends with a device synchronize, so pytest-benchmark's clock (read right
after the function returns) measures finished work on CUDA too; on CPU the sync is a no-op.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch

from harness.plugin_api.task import TaskShape
from harness.training.device import device_name, synchronize
from harness.training.timing import WARMUP_ROUNDS

#: The shape the scaling sweep feeds its models: one real feature in, one value out.
SWEEP_SHAPE = TaskShape("values", 1, "values", 1)


def environment(device: torch.device) -> dict[str, Any]:
    """What produced a figure: a number means little without device, dtype and threads."""
    return {
        "device": str(device),
        "device_name": device_name(device),
        "dtype": str(torch.get_default_dtype()).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_version": torch.__version__,
    }


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the resolved configuration, so rows keyed on less don't mix."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def synced(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """``fn`` followed by a device synchronize, so the clock stops after the work is done."""

    def timed() -> Any:
        result = fn()
        synchronize(device)
        return result

    return timed


def measure(
    benchmark: Any,
    fn: Callable[[], Any],
    device: torch.device,
    *,
    rounds: int,
    items: int,
    unit: str = "tokens",
    warmup_rounds: int = WARMUP_ROUNDS,
    info: dict[str, Any] | None = None,
) -> None:
    """Time ``fn`` in pedantic mode and record throughput and the environment in extra_info.

    ``items`` is what one call processes (batch x timesteps); ``unit`` names it (``tokens``
    for token tasks, ``steps`` for value tasks), giving e.g. ``tokens_per_s`` = items / median.
    """
    extra = {**(info or {}), **environment(device), "unit": unit, "items_per_call": items}
    extra["config_hash"] = config_hash(extra)
    benchmark.extra_info.update(extra)
    synchronize(device)  # nothing queued before the first clock read
    benchmark.pedantic(synced(fn, device), rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
        median = benchmark.stats.stats.median
        benchmark.extra_info[f"{unit}_per_s"] = items / median if median > 0 else None
