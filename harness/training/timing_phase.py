"""The timing phase of a run: every pair's steps timed with the rounds interleaved, speed
relative to a reference pair, and a record of how steady the machine was.

A machine's speed drifts (another process, frequency scaling, a busy hypervisor): timing each
pair in one block, one after another, lets a slow second land on some pairs and not others.
Here the pairs of a task are built together and their rounds run round-robin (A B C A B C ...,
the order rotated each round), so a slow moment lands on every pair alike. Each pair's speed is
then also given as a ratio to the task's reference pair (``--speed-reference``, default ``rnn``
where the task has it), from the rounds timed side by side: round *r* of the pair against
round *r* of the reference, median and quartiles of those ratios. Ratios survive drift that
absolute figures do not; :mod:`harness.report.compare` judges speed by them.

Before the first round and after the last, :mod:`harness.training.noise` reads the load, the
hypervisor's steal and a reference kernel; when they say the machine moved, the phase's
figures are marked unstable (``speed_unstable`` in each record, the reason in run.json).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.training.timing import (
    MAX_ROUNDS,
    MIN_ROUND_S,
    MIN_ROUNDS,
    PHASES,
    WARMUP_ROUNDS,
    PairSteps,
    TimingSpec,
    pair_steps,
    phase_figures,
    round_function,
    rounds_for,
    torch_threads,
)

if TYPE_CHECKING:
    from harness.storage.run_folder import RunFolder

#: The reference model of a task when ``--speed-reference`` is not given (or the task lacks it).
DEFAULT_REFERENCE = "rnn"


@dataclass
class PhaseResult:
    """What a timing phase leaves: a record per pair, and (when anything was timed now) the
    machine's noise record and the reference model of each task."""

    records: list[dict[str, Any]]
    noise: dict[str, Any] | None = None
    references: dict[str, str] = field(default_factory=dict)
    timed: int = 0  # pairs timed now (the others came from the folder)


def _error_text(exc: Exception) -> str:
    from harness.training.contract import ContractError

    if isinstance(exc, ContractError):
        return f"contract: {exc}".splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def base_record(spec: TimingSpec) -> dict[str, Any]:
    return {
        "pair_id": spec.pair_id,
        "task": spec.task,
        "model": spec.model,
        "config_hash": spec.config_hash(),
        "device": spec.device,
        "timing_threads": spec.threads,
        **({"variant_slug": spec.variant} if spec.variant else {}),
    }


def _build(pairs: list[tuple[TimingSpec, Any, Any, Any]], device: Any) -> list[tuple[dict, Any]]:
    """Each pair's record and built steps (``None`` where it could not be built or checked)."""
    built = []
    for spec, task, model, data in pairs:
        record = base_record(spec)
        steps = None
        try:
            with torch_threads(spec.threads):
                steps = pair_steps(task, model, spec.recipe, device, data)
            record.update(steps.info, unit=steps.unit, batches_per_epoch=steps.batches_per_epoch)
        except Exception as exc:  # a pair that cannot be timed leaves its figures empty
            record["error"] = _error_text(exc)
        built.append((record, steps))
    return built


@dataclass
class _Timed:
    record: dict[str, Any]
    steps: PairSteps
    round: Callable[[int], float]
    iterations: int
    round_seconds: float
    times: list[float] = field(default_factory=list)


def _calibrate(
    phase: str, built: list[tuple[dict, Any]], device: Any, warmup_rounds: int
) -> list[_Timed]:
    """Warm each pair's ``phase`` step up; the fastest warm-up call sets the calls per round
    (a round lasts at least :data:`MIN_ROUND_S`)."""
    timed = []
    for record, steps in built:
        if steps is None or "error" in record:
            continue
        fn = round_function(steps, phase, device)
        try:
            once = min(fn(1) for _ in range(max(1, warmup_rounds)))
        except Exception as exc:
            key = "gen_error" if phase == "gen" else "error"
            record[key] = _error_text(exc)
            continue
        per_call = once * (steps.info["gen_steps"] if phase == "gen" else 1)
        iterations = max(1, int(-(-MIN_ROUND_S // max(per_call, 1e-9))))
        timed.append(_Timed(record, steps, fn, iterations, per_call * iterations))
    return timed


def _interleave(phase: str, timed: list[_Timed], budget: float) -> None:
    """Run ``phase``'s rounds round-robin across ``timed`` (the order rotated each round);
    a pair that raises drops out with its error."""
    mean_round = statistics.mean(t.round_seconds for t in timed)
    rounds = rounds_for(mean_round, budget, MIN_ROUNDS, MAX_ROUNDS)
    live = list(timed)
    for r in range(rounds):
        shift = r % len(live) if live else 0
        for entry in live[shift:] + live[:shift]:
            try:
                entry.times.append(entry.round(entry.iterations))
            except Exception as exc:
                entry.record["gen_error" if phase == "gen" else "error"] = _error_text(exc)
                entry.times = []
        live = [t for t in live if t.times]
        if not live:
            break


def time_group(
    pairs: list[tuple[TimingSpec, Any, Any, Any]],
    device: Any,
    warmup_rounds: int = WARMUP_ROUNDS,
) -> list[dict[str, Any]]:
    """Time ``pairs`` (spec, task, model, data or ``None``) together: for each step (training,
    inference, generation) their rounds interleaved. One record per pair, in order."""
    started = time.perf_counter()
    built = _build(pairs, device)
    threads = pairs[0][0].threads if pairs else 1
    with torch_threads(threads):
        for phase, budget in PHASES.items():
            timed = _calibrate(phase, built, device, warmup_rounds)
            if not timed:
                continue
            _interleave(phase, timed, budget)
            for entry in timed:
                if not entry.times:
                    continue
                entry.record.update(phase_figures(phase, entry.times, entry.steps))
                entry.record[f"timing_rounds_{phase}"] = len(entry.times)
                entry.record[f"timing_iterations_{phase}"] = entry.iterations
                entry.record[f"{phase}_round_ms"] = [1000 * t for t in entry.times]
    for record, _ in built:
        if "error" in record:  # figures of a pair that failed part-way are not kept
            for key in [k for k in record if k.startswith(("train_", "infer_", "gen_"))]:
                if key != "gen_error":
                    del record[key]
    seconds = time.perf_counter() - started
    for record, _ in built:
        record["timing_seconds"] = seconds / len(built)  # the group's time, shared
    return [record for record, _ in built]


def relative_speeds(records: list[dict[str, Any]], preferred: str | None = None) -> dict[str, str]:
    """Add each pair's speed relative to its task's reference pair (``*_speed_vs_ref``,
    median and quartiles of round-by-round ratios, > 1: faster than the reference), in place.

    Only pairs timed in the same phase as the reference (the same ``phase_id``) get a ratio:
    figures taken at different moments are not side by side. Returns task -> reference model.
    """
    by_task: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:  # with a sweep: a task's pairs of one variant together
        by_task.setdefault((record["task"], record.get("variant_slug", "")), []).append(record)
    references = {}
    for (task, _), group in by_task.items():
        usable = [r for r in group if r.get("train_round_ms")]
        names = [r["model"] for r in usable]
        choice = next((m for m in (preferred, DEFAULT_REFERENCE) if m in names), None)
        choice = choice or (names[0] if names else None)
        if choice is None:
            continue
        references[task] = choice
        reference = usable[names.index(choice)]
        for record in group:
            for key in [k for k in record if "_speed_vs_ref" in k]:
                del record[key]
            record["speed_reference"] = choice
            if record.get("phase_id") != reference.get("phase_id") or record not in usable:
                continue
            for phase in PHASES:
                key = f"{phase}_round_ms"
                ratios = _ratios(reference.get(key), record.get(key))
                if ratios:
                    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
                    record[f"{phase}_speed_vs_ref"] = median
                    record[f"{phase}_speed_vs_ref_q1"] = q1
                    record[f"{phase}_speed_vs_ref_q3"] = q3
    return references


def _ratios(reference: list[float] | None, pair: list[float] | None) -> list[float]:
    """Round-by-round speed of a pair relative to the reference (its time over the pair's)."""
    if not reference or not pair:
        return []
    n = min(len(reference), len(pair))
    ratios = [reference[i] / pair[i] for i in range(n) if pair[i] > 0]
    return ratios if len(ratios) >= 2 else []


def load_timing(folder: RunFolder, spec: TimingSpec) -> dict[str, Any] | None:
    """A finished timing of ``spec`` made under the same config, or ``None``."""
    record = folder.read_timing(spec.pair_id)
    return record if record and record.get("config_hash") == spec.config_hash() else None


def run_timing(
    specs: list[TimingSpec],
    folder: RunFolder,
    registry: Any,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    reference: str | None = None,
) -> PhaseResult:
    """Time every task's pairs missing from the run folder, interleaved, in this process.

    Nothing else of the run is going on meanwhile (it runs before the cells are handed to any
    worker). A task whose pairs are all in the folder under the same config is read back;
    otherwise all its pairs are timed again together, so its ratios stay side by side.
    """
    from harness.training.device import resolve_device
    from harness.training.noise import machine_state, stability

    groups: dict[tuple[str, str], list[TimingSpec]] = {}
    for spec in specs:
        key = (spec.task, json.dumps(spec.task_options, sort_keys=True, default=str))
        groups.setdefault(key, []).append(spec)
    cached = {spec.pair_id: load_timing(folder, spec) for spec in specs}
    todo = [g for g in groups.values() if any(cached[s.pair_id] is None for s in g)]
    result = PhaseResult(records=[])
    fresh: list[dict[str, Any]] = []
    if todo:
        device = resolve_device(todo[0][0].device)
        threads = todo[0][0].threads
        phase_id = uuid.uuid4().hex[:12]
        before = machine_state(device, threads)
        for group in todo:
            fresh += time_group(_pairs(group, registry), device)
        for record in fresh:  # as cells record it: resolved (``auto`` with Ray on the driver)
            record["device"] = str(device)
        after = machine_state(device, threads)
        result.noise = stability(before, after)
        result.noise["phase_id"] = phase_id
        for record in fresh:
            record["phase_id"] = phase_id
            record["speed_unstable"] = result.noise["unstable"]
        result.timed = len(fresh)
    by_id = {r["pair_id"]: r for r in fresh}
    result.records = [by_id.get(s.pair_id) or cached[s.pair_id] for s in specs]
    result.references = relative_speeds(result.records, reference)
    for record in result.records:
        folder.write_timing(record)
        on_done(record)
    return result


def _pairs(group: list[TimingSpec], registry: Any) -> list[tuple[TimingSpec, Any, Any, Any]]:
    """A task's pairs with their plugins and the task's seed-0 data, made once (``None`` when
    it cannot be made: :func:`time_group` makes it again and records the error)."""
    first = group[0]
    task = registry.tasks[first.task].with_options(**first.task_options)
    try:
        data = task.make_data(0)
    except Exception:
        data = None
    return [
        (spec, task, registry.models[spec.model].with_options(**spec.model_options), data)
        for spec in group
    ]


def time_pair(
    spec: TimingSpec,
    task: Any,
    model: Any,
    device: Any,
    data: Any = None,
    warmup_rounds: int = WARMUP_ROUNDS,
) -> dict[str, Any]:
    """Time one pair's steps on their own (a run interleaves a task's pairs instead,
    :func:`run_timing`); the record stored under ``timing/``.

    A pair whose model cannot be built, breaks the contract or cannot be stepped gives a
    record with ``error`` and no figures.
    """
    return time_group([(spec, task, model, data)], device, warmup_rounds)[0]
