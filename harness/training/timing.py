"""Speed figures apart from training: a task x model pair's steps and how one is timed.

Speed read off training is speed under whatever else shares the cores at that moment (another
worker's cell, evaluation, data movement). The timing phase instead builds each pair with its
recipe's batch and hidden size on the run's device, checks it against the model contract, warms
up, and times calibrated rounds of three steps with nothing else of the run going on: the
training step, the inference step (teacher-forced, one batch) and generation (one sequence
decoded a step at a time with the state carried). It reports the median and the interquartile
range, with the rounds and the thread count used. :mod:`harness.training.timing_phase` runs the
rounds of a task's pairs interleaved and adds their speed relative to a reference pair.

The step functions here are the very ones the pytest-benchmark runs in ``benchmarks/`` time,
and the training step is the one the training loop runs
(:func:`harness.training.train.make_training_step`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.plugin_api.task import Recipe

#: Bump when the way figures are taken changes, so cached timings are not reused.
TIMING_VERSION = 3
#: Calls before the timed rounds (the first pay allocator and autograd set-up); the fastest
#: of them calibrates the rounds.
WARMUP_ROUNDS = 3
#: Seconds of timed rounds per pair: training step, inference step, generation.
TRAIN_BUDGET_S, INFER_BUDGET_S, GEN_BUDGET_S = 0.08, 0.05, 0.05
#: Generation: at most this long a prefix (half the task's length), then at most this many
#: steps decoded one at a time (what is left of the sequence after the prefix).
GEN_PREFIX_MAX, GEN_STEPS_MAX = 32, 16
#: Bounds on the calibrated number of rounds.
MIN_ROUNDS, MAX_ROUNDS = 16, 400
#: A round of a sub-millisecond step calls it several times, so each round lasts about this
#: long and the clock's own cost and jitter stay small beside it.
MIN_ROUND_S = 0.002
#: Columns a timing adds to a pair's cells (medians, interquartile bounds, rounds, threads).
TIMING_COLUMNS = [
    "train_throughput", "train_throughput_q1", "train_throughput_q3",
    "train_ms_per_batch", "train_ms_per_batch_q1", "train_ms_per_batch_q3",
    "infer_throughput", "infer_throughput_q1", "infer_throughput_q3",
    "infer_ms_per_batch", "infer_ms_per_batch_q1", "infer_ms_per_batch_q3",
    "gen_tokens_per_s", "gen_tokens_per_s_q1", "gen_tokens_per_s_q3",
    "gen_ms_per_token", "gen_ms_per_token_q1", "gen_ms_per_token_q3", "gen_prefix", "gen_steps",
    "train_speed_vs_ref", "train_speed_vs_ref_q1", "train_speed_vs_ref_q3",
    "infer_speed_vs_ref", "infer_speed_vs_ref_q1", "infer_speed_vs_ref_q3",
    "gen_speed_vs_ref", "gen_speed_vs_ref_q1", "gen_speed_vs_ref_q3", "speed_reference",
    "timing_rounds_train", "timing_rounds_infer", "timing_rounds_gen", "timing_threads",
    "speed_unstable",
]  # fmt: skip
#: The timed steps: name, seconds of rounds per pair.
PHASES = {"train": TRAIN_BUDGET_S, "infer": INFER_BUDGET_S, "gen": GEN_BUDGET_S}


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
    #: with a sweep: the cells' variant as a file-name part (their pair is timed per variant)
    variant: str = ""

    @property
    def pair_id(self) -> str:
        if self.variant:
            return f"{self.task}__{self.model}__{self.variant}"
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
            "timing": [
                TIMING_VERSION,
                WARMUP_ROUNDS,
                PHASES,
                MIN_ROUND_S,
                GEN_PREFIX_MAX,
                GEN_STEPS_MAX,
            ],  # fmt: skip
        }

    def config_hash(self) -> str:
        """A cached timing is reused only when this matches."""
        text = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
@dataclass
class PairSteps:
    """A built pair and its timed steps. ``train`` and ``infer`` are calls of no arguments on
    one batch; ``gen`` decodes one sequence after its prefix and returns the seconds per
    generated step it took (the prefix is not on the clock)."""

    train: Callable[[], Any]
    infer: Callable[[], Any]
    items: int  # batch x timesteps: what one call processes
    unit: str  # "tokens" for token inputs, "steps" for value inputs
    batches_per_epoch: int
    info: dict[str, Any]
    gen: Callable[[], float] | None = None


def pair_steps(task: Any, model: Any, recipe: Recipe, device: Any, data: Any = None) -> PairSteps:
    """Build ``model`` for ``task`` (seed 0) and one batch of the recipe's size on ``device``,
    checked against the model contract first (a pair that breaks it raises
    :class:`~harness.training.contract.ContractError` and is never timed).

    ``train`` is forward, backward, clip and optimizer step, exactly the step the training loop
    runs; ``infer`` is a forward pass under ``no_grad`` from a fresh state, what scoring pays;
    ``gen`` is :func:`generation_round`. Data is built before any clock starts.
    """
    import torch

    from harness.training.contract import check_data, check_first_forward
    from harness.training.train import make_training_step

    data = data if data is not None else task.make_data(0)
    check_data(task.shape, data, task.scored_steps)
    shape = task.shape
    if shape.length is None:  # as in training: the model learns the length from the data
        shape = dataclasses.replace(shape, length=int(data.train_inputs.shape[1]))
    x = data.train_inputs[: recipe.batch_size].to(device)
    y = data.train_targets[: recipe.batch_size].to(device)
    torch.manual_seed(0)
    net = model.make(shape, recipe.hidden_size, recipe.num_layers).to(device).train()
    check_first_forward(net, shape, x, recipe.batch_size, recipe.carry_state)
    step = make_training_step(net, recipe, shape.output_kind, task.scored_steps)
    torch.manual_seed(0)  # a twin in eval mode, so neither step changes the other's mode
    infer_net = model.make(shape, recipe.hidden_size, recipe.num_layers).to(device).eval()

    def train() -> Any:
        return step(x, y, None)

    def infer() -> Any:
        with torch.no_grad():
            return infer_net(x, None)

    gen, prefix, steps = generation_round(infer_net, shape, x[:1], device)
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
        "gen_prefix": prefix,
        "gen_steps": steps,
    }
    return PairSteps(
        train=train,
        infer=infer,
        items=x.shape[0] * x.shape[1],
        unit="tokens" if task.shape.input_kind == "tokens" else "steps",
        batches_per_epoch=math.ceil(n_train / recipe.batch_size),
        info=info,
        gen=gen,
    )


def generation_round(
    net: Any, shape: Any, sequence: Any, device: Any
) -> tuple[Callable[[], float], int, int]:
    """Autoregressive decoding of one sequence, a step at a time with the state carried:
    the callable runs the prefix (off the clock), then decodes and returns seconds per step.

    The prefix is half of ``sequence`` (at most :data:`GEN_PREFIX_MAX` steps); the steps
    decoded are what is left (at most :data:`GEN_STEPS_MAX`). Each step's input is the model's
    own output where it can be one (token ids from the argmax over classes, reduced below the
    vocabulary; values when outputs and inputs have the same width), else the sequence's next
    step: either way one step at a time, which is what generation costs. Returns the callable,
    the prefix length and the number of steps.
    """
    import torch

    from harness.training.device import synchronize

    length = int(sequence.shape[1])
    prefix = max(1, min(length // 2, GEN_PREFIX_MAX))
    steps = max(1, min(GEN_STEPS_MAX, length - prefix))
    head = sequence[:, :prefix]
    tokens = shape.input_kind == "tokens" and shape.output_kind == "classes"
    values = shape.input_kind == "values" and shape.output_kind == "values"
    feeds_back = tokens or (values and shape.output_size == shape.input_size)

    def next_input(outputs: Any, i: int) -> Any:
        if tokens:
            return outputs[:, -1:].argmax(-1) % shape.input_size
        if feeds_back:
            return outputs[:, -1:]
        at = min(prefix + i, length - 1)
        return sequence[:, at : at + 1]

    @torch.no_grad()
    def generate() -> float:
        outputs, state = net(head, None)
        synchronize(device)
        started = time.perf_counter()
        for i in range(steps):
            outputs, state = net(next_input(outputs, i), state)
        synchronize(device)
        return (time.perf_counter() - started) / steps

    return generate, prefix, steps


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


def summarize_generation(times: list[float]) -> dict[str, float]:
    """Median and quartiles of ms per generated step (one sequence), and steps per second."""
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")

    def rate(seconds: float) -> float:
        return 1 / seconds if seconds > 0 else math.inf

    return {
        "gen_tokens_per_s": rate(median),
        "gen_tokens_per_s_q1": rate(q3),
        "gen_tokens_per_s_q3": rate(q1),
        "gen_ms_per_token": 1000 * median,
        "gen_ms_per_token_q1": 1000 * q1,
        "gen_ms_per_token_q3": 1000 * q3,
    }


def round_function(steps: PairSteps, phase: str, device: Any) -> Callable[[int], float]:
    """``phase``'s step as one timed round: ``round(iterations)`` returns seconds per call
    (train, infer: per batch; gen: per generated step)."""
    if phase == "gen":
        assert steps.gen is not None
        gen = steps.gen

        def generation(iterations: int) -> float:
            return sum(gen() for _ in range(iterations)) / iterations

        return generation
    fn = steps.train if phase == "train" else steps.infer

    def batch(iterations: int) -> float:
        return time_rounds(fn, device, 1, iterations)[0]

    return batch


def phase_figures(phase: str, times: list[float], steps: PairSteps) -> dict[str, float]:
    """The figures of one phase's rounds (``times``: seconds per call)."""
    if phase == "gen":
        return summarize_generation(times)
    return summarize(times, steps.items, phase)
