"""Speed figures apart from training: each task x model pair's steps, timed on their own.

Speed read off training is speed under whatever else shares the cores at that moment (another
worker's cell, evaluation, data movement). The timing phase instead builds each pair with its
recipe's batch and hidden size on the run's device, warms up, and times calibrated rounds of the
training step and of the inference step, with nothing else of the run going on. It reports the
median and the interquartile range, with the rounds and the thread count used.

The step functions here are the very ones the pytest-benchmark runs in ``benchmarks/`` time,
and the training step is the one the training loop runs
(:func:`harness.training.train.make_training_step`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from harness.plugin_api.task import Recipe

if TYPE_CHECKING:
    from harness.storage.run_folder import RunFolder

#: Bump when the way figures are taken changes, so cached timings are not reused.
TIMING_VERSION = 2
#: Calls before the timed rounds (the first pay allocator and autograd set-up); the fastest
#: of them calibrates the rounds.
WARMUP_ROUNDS = 3
#: Seconds of timed rounds per pair: training step, inference step.
TRAIN_BUDGET_S, INFER_BUDGET_S = 0.08, 0.05
#: Bounds on the calibrated number of rounds.
MIN_ROUNDS, MAX_ROUNDS = 10, 400
#: A round of a sub-millisecond step calls it several times, so each round lasts about this
#: long and the clock's own cost and jitter stay small beside it.
MIN_ROUND_S = 0.002
#: Columns a timing adds to a pair's cells (medians, interquartile bounds, rounds, threads).
TIMING_COLUMNS = [
    "train_throughput", "train_throughput_q1", "train_throughput_q3",
    "train_ms_per_batch", "train_ms_per_batch_q1", "train_ms_per_batch_q3",
    "infer_throughput", "infer_throughput_q1", "infer_throughput_q3",
    "infer_ms_per_batch", "infer_ms_per_batch_q1", "infer_ms_per_batch_q3",
    "timing_rounds_train", "timing_rounds_infer", "timing_threads",
]  # fmt: skip


@dataclass(frozen=True)
class TimingSpec:
    """What determines a pair's speed figures, and nothing that does not (no seed, no epochs)."""

    task: str
    model: str
    recipe: Recipe
    device: str
    threads: int
    task_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)

    @property
    def pair_id(self) -> str:
        return f"{self.task}__{self.model}"

    def config(self) -> dict[str, Any]:
        import torch

        from harness.version import __version__

        recipe = asdict(self.recipe)
        recipe.pop("epochs")  # the speed of one step does not depend on how many are taken
        return {
            "task": self.task,
            "task_options": self.task_options,
            "model": self.model,
            "model_options": self.model_options,
            "recipe": recipe,
            "device": self.device,
            "threads": self.threads,
            "dtype": "float32",
            "harness": __version__,
            "torch": torch.__version__,
            "timing": [TIMING_VERSION, WARMUP_ROUNDS, TRAIN_BUDGET_S, INFER_BUDGET_S, MIN_ROUND_S],
        }

    def config_hash(self) -> str:
        """A cached timing is reused only when this matches."""
        text = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class PairSteps:
    """A built pair and its two step functions, each a call of no arguments on one batch."""

    train: Callable[[], Any]
    infer: Callable[[], Any]
    items: int  # batch x timesteps: what one call processes
    unit: str  # "tokens" for token inputs, "steps" for value inputs
    batches_per_epoch: int
    info: dict[str, Any]


def pair_steps(task: Any, model: Any, recipe: Recipe, device: Any, data: Any = None) -> PairSteps:
    """Build ``model`` for ``task`` (seed 0) and one batch of the recipe's size on ``device``.

    ``train`` is forward, backward, clip and optimizer step, exactly the step the training loop
    runs; ``infer`` is a forward pass under ``no_grad`` from a fresh state, what scoring and
    generation pay. Data is built before any clock starts.
    """
    import torch

    from harness.training.train import make_training_step

    data = data if data is not None else task.make_data(0)
    x = data.train_inputs[: recipe.batch_size].to(device)
    y = data.train_targets[: recipe.batch_size].to(device)
    torch.manual_seed(0)
    net = model.make(task.shape, recipe.hidden_size, recipe.num_layers).to(device).train()
    step = make_training_step(net, recipe, task.shape.output_kind, task.scored_steps)
    torch.manual_seed(0)  # a twin in eval mode, so neither step changes the other's mode
    infer_net = model.make(task.shape, recipe.hidden_size, recipe.num_layers).to(device).eval()

    def train() -> Any:
        return step(x, y, None)

    def infer() -> Any:
        with torch.no_grad():
            return infer_net(x, None)

    n_train = data.train_inputs.shape[0]
    info = {
        "task": task.name,
        "model": model.name,
        "batch_size": recipe.batch_size,
        "timed_batch": x.shape[0],  # fewer when the training set is smaller than a batch
        "timesteps": x.shape[1],
        "hidden_size": recipe.hidden_size,
        "num_layers": recipe.num_layers,
        "optimizer": recipe.optimizer,
        "scored_steps": task.scored_steps,
        "params": sum(p.numel() for p in net.parameters()),
    }
    return PairSteps(
        train=train,
        infer=infer,
        items=x.shape[0] * x.shape[1],
        unit="tokens" if task.shape.input_kind == "tokens" else "steps",
        batches_per_epoch=math.ceil(n_train / recipe.batch_size),
        info=info,
    )


def call_seconds(fn: Callable[[], Any], device: Any) -> float:
    """Seconds of one call of ``fn``, the device synchronized before each clock read."""
    from harness.training.device import synchronize

    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def calibrated_rounds(
    fn: Callable[[], Any], device: Any, budget_s: float, lo: int, hi: int, iterations: int = 1
) -> int:
    """Rounds (of ``iterations`` calls) that fit ``fn`` into about ``budget_s``, from one
    untimed call (also a warm-up)."""
    return rounds_for(call_seconds(fn, device), budget_s, lo, hi, iterations)


def rounds_for(once: float, budget_s: float, lo: int, hi: int, iterations: int = 1) -> int:
    """Rounds of ``iterations`` calls of a ``once``-second step in about ``budget_s``,
    within [lo, hi]."""
    return max(lo, min(hi, int(budget_s / max(once * iterations, 1e-9))))


def calibrated_iterations(once: float) -> int:
    """Calls per round so that a round lasts at least :data:`MIN_ROUND_S` (at least one),
    for a step that took ``once`` seconds."""
    return max(1, math.ceil(MIN_ROUND_S / max(once, 1e-9)))


def time_rounds(
    fn: Callable[[], Any], device: Any, rounds: int, iterations: int = 1
) -> list[float]:
    """Seconds per call in each of ``rounds`` rounds of ``iterations`` calls, the device
    synchronized before every clock read."""
    from harness.training.device import synchronize

    times = []
    for _ in range(rounds):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(iterations):
            fn()
        synchronize(device)
        times.append((time.perf_counter() - started) / iterations)
    return times


def summarize(times: list[float], items: int, phase: str) -> dict[str, float]:
    """Median and quartiles of ms per batch, and the throughputs they give (items / time)."""
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")

    def rate(seconds: float) -> float:
        return items / seconds if seconds > 0 else math.inf

    return {
        f"{phase}_throughput": rate(median),
        f"{phase}_throughput_q1": rate(q3),  # the slower quartile of time is the lower rate
        f"{phase}_throughput_q3": rate(q1),
        f"{phase}_ms_per_batch": 1000 * median,
        f"{phase}_ms_per_batch_q1": 1000 * q1,
        f"{phase}_ms_per_batch_q3": 1000 * q3,
    }


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch threads, then restore the count in effect before."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_pair(
    spec: TimingSpec,
    task: Any,
    model: Any,
    device: Any,
    data: Any = None,
    warmup_rounds: int = WARMUP_ROUNDS,
) -> dict[str, Any]:
    """Time one pair's training and inference steps; the record stored under ``timing/``.

    A pair whose model cannot be built or stepped gives a record with ``error`` and no figures.
    """
    record: dict[str, Any] = {
        "pair_id": spec.pair_id,
        "task": spec.task,
        "model": spec.model,
        "config_hash": spec.config_hash(),
        "device": spec.device,
        "timing_threads": spec.threads,
    }
    started = time.perf_counter()
    try:
        with torch_threads(spec.threads):
            steps = pair_steps(task, model, spec.recipe, device, data)
            record.update(steps.info, unit=steps.unit, batches_per_epoch=steps.batches_per_epoch)
            for phase, fn, budget in (
                ("train", steps.train, TRAIN_BUDGET_S),
                ("infer", steps.infer, INFER_BUDGET_S),
            ):
                # the warm-up calls are timed too: the fastest calibrates the rounds, so no
                # call is spent on calibration alone (the first pays allocator set-up)
                once = min(call_seconds(fn, device) for _ in range(max(1, warmup_rounds)))
                iterations = calibrated_iterations(once)
                rounds = rounds_for(once, budget, MIN_ROUNDS, MAX_ROUNDS, iterations)
                times = time_rounds(fn, device, rounds, iterations)
                record.update(summarize(times, steps.items, phase))
                record[f"timing_rounds_{phase}"] = rounds
                record[f"timing_iterations_{phase}"] = iterations
    except Exception as exc:  # a pair that cannot be timed leaves its figures empty
        record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    record["timing_seconds"] = time.perf_counter() - started
    return record


def load_timing(folder: RunFolder, spec: TimingSpec) -> dict[str, Any] | None:
    """A finished timing of ``spec`` made under the same config, or ``None``."""
    record = folder.read_timing(spec.pair_id)
    return record if record and record.get("config_hash") == spec.config_hash() else None


def run_timing(
    specs: list[TimingSpec],
    folder: RunFolder,
    registry: Any,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
) -> list[dict[str, Any]]:
    """Time every pair missing from the run folder, one after another, in this process.

    Nothing else of the run is going on meanwhile (it runs before the cells are handed to any
    worker), so no other cell shares the cores. Each record is written the moment it is made.
    """
    from harness.training.device import resolve_device

    records, data_cache = [], {}
    for spec in specs:
        record = load_timing(folder, spec)
        if record is None:
            task = registry.tasks[spec.task].with_options(**spec.task_options)
            device = resolve_device(spec.device)
            key = (spec.task, json.dumps(spec.task_options, sort_keys=True, default=str))
            try:
                if key not in data_cache:
                    data_cache[key] = task.make_data(0)
                data = data_cache[key]
            except Exception:  # time_pair builds the data again and records the error
                data = None
            model = registry.models[spec.model].with_options(**spec.model_options)
            record = time_pair(spec, task, model, device, data)
            folder.write_timing(record)
        records.append(record)
        on_done(record)
    return records
