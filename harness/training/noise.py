"""Is the machine steady enough to believe a speed figure? What the timing phase checks.

A shared machine (a CI runner, a laptop with a browser open, a cloud VM whose host is busy)
changes speed under a benchmark without a word. The timing phase therefore records, before its
first round and after its last: the load average, the CPU time the hypervisor took (``steal``
in ``/proc/stat``, where the kernel gives it) and the time of one fixed reference kernel (a
matrix product of a set size). It marks its figures *unstable* when one of them says the
machine moved:

- **load**: the 1-minute load average above the core count at either end (more runnable tasks
  than cores, the phase's own included, so something else was competing);
- **steal**: more than :data:`MAX_STEAL` of CPU time taken by the hypervisor during the phase;
- **drift**: the reference kernel more than :data:`MAX_KERNEL_DRIFT` slower or faster at the
  end than at the start.

Relative speeds (a pair against a reference pair timed in the same interleaved rounds) survive
most of this; absolute figures do not. Unstable marks both, and the reason is in run.json.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

#: More than this fraction of CPU time stolen by the hypervisor during the phase: unstable.
MAX_STEAL = 0.05
#: The reference kernel this much slower or faster at the end than at the start: unstable.
MAX_KERNEL_DRIFT = 0.10
#: The 1-minute load average above ``MAX_LOAD_PER_CORE`` x cores at either end: unstable.
MAX_LOAD_PER_CORE = 1.0
#: The reference kernel: a square float32 matrix product of this size, timed in this many
#: rounds of about :data:`KERNEL_ROUND_S` seconds each.
KERNEL_SIZE, KERNEL_ROUNDS, KERNEL_ROUND_S = 128, 15, 0.004
#: Seconds of the kernel run untimed first: a core that was idle runs slower until its clock
#: speed rises, which is the machine waking up, not moving.
KERNEL_WARMUP_S = 0.2


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or ``None`` where the system has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_ticks(stat: Path = Path("/proc/stat")) -> dict[str, int] | None:
    """The machine's total and stolen CPU ticks since boot (Linux), or ``None``."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is already
    # counted in user and nice, so it is left out of the total
    total = sum(ticks[:8])
    return {"total": total, "steal": ticks[7] if len(ticks) > 7 else 0}


def steal_fraction(before: dict[str, int] | None, after: dict[str, int] | None) -> float | None:
    """The fraction of CPU time the hypervisor took between two :func:`cpu_ticks` readings."""
    if not before or not after:
        return None
    total = after["total"] - before["total"]
    return (after["steal"] - before["steal"]) / total if total > 0 else None


def reference_kernel_ms(device: Any, threads: int) -> float:
    """Median milliseconds of one fixed matrix product on ``device`` with ``threads`` threads:
    the same work every time, so a change in it is the machine's, not the code's."""
    import torch

    from harness.training.device import synchronize
    from harness.training.timing import torch_threads

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(KERNEL_SIZE, KERNEL_SIZE, generator=generator).to(device)
    b = torch.rand(KERNEL_SIZE, KERNEL_SIZE, generator=generator).to(device)
    with torch_threads(threads):
        warm_until = time.perf_counter() + KERNEL_WARMUP_S  # the clock speed settles first
        while time.perf_counter() < warm_until:
            a @ b
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        once = max(time.perf_counter() - started, 1e-7)
        iterations = max(1, int(KERNEL_ROUND_S / once))
        times = []
        for _ in range(KERNEL_ROUNDS):
            synchronize(device)
            started = time.perf_counter()
            for _ in range(iterations):
                a @ b
            synchronize(device)
            times.append((time.perf_counter() - started) / iterations)
    return 1000 * statistics.median(times)


def machine_state(device: Any, threads: int) -> dict[str, Any]:
    """One reading of what the machine is doing: load, CPU ticks, the reference kernel."""
    return {
        "load": load_average(),
        "ticks": cpu_ticks(),
        "kernel_ms": reference_kernel_ms(device, threads),
        "at": time.time(),
    }


def stability(
    before: dict[str, Any], after: dict[str, Any], cores: int | None = None
) -> dict[str, Any]:
    """The phase's noise record for run.json: the readings, and ``unstable`` with the reason
    (every check that failed, joined) when the machine moved."""
    cores = cores or os.cpu_count() or 1
    reasons = []
    loads = [s["load"][0] for s in (before, after) if s.get("load")]
    if loads and max(loads) > MAX_LOAD_PER_CORE * cores:
        reasons.append(
            f"load average {max(loads):.2f} above the {cores} cores (something else was running)"
        )
    steal = steal_fraction(before.get("ticks"), after.get("ticks"))
    if steal is not None and steal > MAX_STEAL:
        reasons.append(f"the hypervisor took {steal:.0%} of CPU time (steal)")
    start, end = before["kernel_ms"], after["kernel_ms"]
    drift = end / start - 1 if start > 0 else 0.0
    if abs(drift) > MAX_KERNEL_DRIFT:
        reasons.append(
            f"the reference kernel took {start:.3f} ms at the start and {end:.3f} ms at the end "
            f"({drift:+.0%})"
        )
    return {
        "load_before": before.get("load"),
        "load_after": after.get("load"),
        "steal_fraction": steal,
        "kernel_ms_start": start,
        "kernel_ms_end": end,
        "kernel_drift": drift,
        "checked": (["load average"] if loads else [])
        + (["steal"] if steal is not None else [])
        + ["reference kernel"],
        "unstable": bool(reasons),
        "unstable_reason": "; ".join(reasons),
    }
