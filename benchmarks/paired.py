"""Paired, interleaved timing of the two overhead comparisons, for a noisy machine.

pytest-benchmark times one variant's rounds and then the other's, so load that comes and goes
on a shared machine lands on one side: on the two-core development VM, four runs of the
training-loop pair gave harness/plain median ratios from 0.90 to 1.11. Here the two variants
alternate in ABBA order and each pair gives a ratio taken seconds apart; the median of those
ratios is what to quote against a goal such as "at most 5% slower".

    python -m benchmarks.paired loop --threads 1 --reps 20   # train_cell vs the plain loop
    python -m benchmarks.paired step --threads 1 --reps 300  # scratch-rnn vs nn.RNN
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness.plugin_api.manager import load_plugins
from harness.training.device import resolve_device, synchronize
from harness.training.train import make_training_step, train_cell


def _loop_pair(device: torch.device) -> dict[str, Callable[[], Any]]:
    from benchmarks.test_overhead import LOOP_MODEL, LOOP_TASK, plain_loop

    registry = load_plugins()
    task, model = registry.tasks[LOOP_TASK], registry.models[LOOP_MODEL]
    return {
        "harness": lambda: train_cell(task, model, 0, device, task.recipe),
        "plain": lambda: plain_loop(task, task.recipe, 0, device),
    }


def _step_pair(device: torch.device) -> dict[str, Callable[[], Any]]:
    from benchmarks.test_overhead import STEP_HIDDEN, STEP_TASK

    registry = load_plugins()
    task = registry.tasks[STEP_TASK]
    recipe = task.recipe.with_overrides(hidden_size=STEP_HIDDEN)
    data = task.make_data(0)
    x = data.train_inputs[: recipe.batch_size].to(device)
    y = data.train_targets[: recipe.batch_size].to(device)
    pair = {}
    for name in ("scratch-rnn", "rnn"):  # the ratio reads scratch-rnn / rnn
        torch.manual_seed(0)
        net = registry.models[name].make(task.shape, STEP_HIDDEN, 1).to(device).train()
        step = make_training_step(net, recipe, task.shape.output_kind, task.scored_steps)
        pair[name] = lambda step=step: step(x, y, None)
    return pair


def paired(
    pair: dict[str, Callable[[], Any]], reps: int, device: torch.device, warmup: int = 2
) -> dict[str, list[float]]:
    """Wall-clock seconds of each variant, alternating ABBA so drift hits both alike."""
    names = list(pair)
    for _ in range(warmup):
        for fn in pair.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(reps):
        for name in names if i % 2 == 0 else names[::-1]:
            synchronize(device)
            started = time.perf_counter()
            pair[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - started)
    return times


def _spread(values: Sequence[float]) -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"median {statistics.median(values):.4g}  IQR {q1:.4g}-{q3:.4g}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__)
    parser.add_argument("comparison", choices=("loop", "step"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--reps", type=int, default=20, help="pairs to time")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pair = (_loop_pair if args.comparison == "loop" else _step_pair)(device)
    times = paired(pair, args.reps, device)
    (a, ta), (b, tb) = times.items()
    print(
        f"{args.comparison}: {args.reps} ABBA pairs, {torch.get_num_threads()} torch threads, "
        f"device {device}, torch {torch.__version__}"
    )
    for name, values in times.items():
        print(f"  {name:12s} seconds {_spread(values)}")
    print(f"  {a}/{b} paired ratio {_spread([x / y for x, y in zip(ta, tb)])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
