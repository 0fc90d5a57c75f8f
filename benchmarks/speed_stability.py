"""Do the speed figures survive a noisy machine? A script (not collected by pytest).

Runs the default grid three times at different moments with one epoch per cell (the timing
phase is what is measured; the cells only give `harness compare` something to compare):
A and B identical, C with one model slowed on purpose (its forward pass sleeps as long as it
ran, so it is about twice as slow). Prints, per speed column, how far each pair's absolute
figure and its ratio to the task's reference moved from A to B, then what
``harness compare`` flags for A -> B (nothing, we hope) and A -> C (the slowed model only).

    python benchmarks/speed_stability.py [--slow gru] [--pause 20] [--out /tmp/speed]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import time
from pathlib import Path

import torch

from harness.api import compare
from harness.plugin_api.manager import load_plugins
from harness.report.run import LoadedRun
from harness.session import run_session
from harness.settings.config import RunConfig

COLUMNS = {
    "train": ("train_throughput", "train_speed_vs_ref"),
    "infer": ("infer_throughput", "infer_speed_vs_ref"),
    "gen": ("gen_tokens_per_s", "gen_speed_vs_ref"),
}


class Slowed(torch.nn.Module):
    """``inner`` with every forward pass followed by a sleep as long as the pass took."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, state=None):
        started = time.perf_counter()
        result = self.inner(x, state)
        time.sleep(time.perf_counter() - started)
        return result


def slowed_registry(name: str):
    registry = load_plugins()
    model = registry.models[name]
    build = model.make

    def slow_build(shape, hidden_size, num_layers, *options):
        return Slowed(build(shape, hidden_size, num_layers))

    registry.models[name] = dataclasses.replace(model, build=slow_build, options=None)
    return registry


def run(out: Path, registry=None) -> LoadedRun:
    config = RunConfig(out=str(out), epochs=1, executor="local")
    config.validate()
    run_session(config, registry=registry)
    return LoadedRun.load(out)


def spread(a: LoadedRun, b: LoadedRun) -> None:
    """Per column: the median and worst |B/A - 1| over pairs, absolute and relative."""
    pairs_a = {(t["task"], t["model"]): t for t in a.timings}
    pairs_b = {(t["task"], t["model"]): t for t in b.timings}
    both = sorted(set(pairs_a) & set(pairs_b))
    print(f"{len(both)} pairs; |B/A - 1| per pair: median, worst (pair)")
    for phase, (absolute, relative) in COLUMNS.items():
        for label, column in (("absolute", absolute), ("x reference", relative)):
            moves = []
            for pair in both:
                va, vb = pairs_a[pair].get(column), pairs_b[pair].get(column)
                if va and vb and pairs_a[pair].get("speed_reference") != pair[1]:
                    moves.append((abs(vb / va - 1), pair))
            if moves:
                worst = max(moves)
                print(
                    f"  {phase:5} {label:11}: median {statistics.median(m for m, _ in moves):6.1%}"
                    f"  worst {worst[0]:6.1%} ({worst[1][0]} x {worst[1][1]})"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", default="gru", help="the model slowed on purpose in run C")
    parser.add_argument("--pause", type=float, default=20, help="seconds between the runs")
    parser.add_argument("--out", type=Path, default=Path("/tmp/speed-stability"))
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime before: {uptime}")
    runs = {}
    for name, registry in (("A", None), ("B", None), ("C", slowed_registry(args.slow))):
        folder = args.out / name
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        runs[name] = run(folder, registry)
        timing = runs[name].info.get("timing", {})
        print(
            f"run {name}: phase {timing.get('seconds', 0):.1f} s, unstable "
            f"{timing.get('unstable')} {timing.get('unstable_reason', '')}"
        )
        time.sleep(args.pause)
    print("A -> B (identical runs):")
    spread(runs["A"], runs["B"])
    for b in ("B", "C"):
        result = compare(runs["A"].folder.path, runs[b].folder.path)
        speed = [r for r in result.regressions if "speed" in r]
        print(f"compare A -> {b}: {len(speed)} speed regressions")
        for line in speed:
            print(f"  {line}")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime after: {uptime}")


if __name__ == "__main__":
    main()
