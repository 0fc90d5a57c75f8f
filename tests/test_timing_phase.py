"""The timing phase (#18): rounds interleaved across a task's pairs, speed relative to a reference
pair, the machine's noise on record, generation timed apart, contract checked before timing, and
compare judging speed by the ratios."""

from __future__ import annotations

import warnings

import pytest
import torch

from harness.report.compare import task_speeds
from harness.storage.run_folder import RunFolder
from harness.training import noise
from harness.training.timing import TimingSpec
from harness.training.timing_phase import (
    _interleave,
    _Timed,
    relative_speeds,
    run_timing,
    time_pair,
)


def spec_for(registry, task: str, model: str) -> TimingSpec:
    return TimingSpec(task, model, registry.tasks[task].recipe, "cpu", threads=1)


def test_rounds_run_round_robin_with_the_order_rotated(monkeypatch):
    calls: list[str] = []

    def entry(name: str) -> _Timed:
        def one_round(iterations: int) -> float:
            calls.append(name)
            return 0.001

        return _Timed({"model": name}, None, one_round, iterations=1, round_seconds=0.001)

    monkeypatch.setattr("harness.training.timing_phase.MIN_ROUNDS", 3)
    monkeypatch.setattr("harness.training.timing_phase.MAX_ROUNDS", 3)
    timed = [entry("a"), entry("b"), entry("c")]
    _interleave("train", timed, budget=0.001)
    assert "".join(calls) == "abc" + "bca" + "cab"  # every pair once a round, none always first
    assert all(len(t.times) == 3 for t in timed)


def test_a_pair_that_fails_mid_phase_drops_out_and_the_others_go_on(monkeypatch):
    def steady(iterations: int) -> float:
        return 0.001

    def breaks(iterations: int) -> float:
        raise RuntimeError("boom")

    monkeypatch.setattr("harness.training.timing_phase.MIN_ROUNDS", 4)
    good = _Timed({}, None, steady, 1, 0.001)
    bad = _Timed({}, None, breaks, 1, 0.001)
    _interleave("train", [good, bad], budget=0.0)
    assert len(good.times) == 4 and bad.times == [] and bad.record["error"] == "RuntimeError: boom"


def record(model: str, train: list[float], phase_id: str = "p", task: str = "t") -> dict:
    return {"task": task, "model": model, "pair_id": f"{task}__{model}", "phase_id": phase_id,
            "train_round_ms": train}  # fmt: skip


def test_relative_speed_is_round_by_round_against_the_reference():
    drift = [1.0, 2.0, 1.0, 2.0, 1.0]  # the machine halves its speed every other round
    rnn = record("rnn", [1.0 * d for d in drift])
    gru = record("gru", [2.0 * d for d in drift])  # always half as fast, whatever the drift
    refs = relative_speeds([gru, rnn])
    assert refs == {"t": "rnn"}
    assert gru["train_speed_vs_ref"] == pytest.approx(0.5)
    assert gru["train_speed_vs_ref_q1"] == pytest.approx(0.5) == gru["train_speed_vs_ref_q3"]
    assert rnn["train_speed_vs_ref"] == 1.0 and gru["speed_reference"] == "rnn"
    assert "infer_speed_vs_ref" not in gru  # no infer rounds, no ratio


def test_the_reference_is_the_one_asked_for_else_rnn_else_the_first_timed():
    lstm, gru = record("lstm", [4.0, 4.0]), record("gru", [2.0, 2.0])
    assert relative_speeds([lstm, gru]) == {"t": "lstm"}  # no rnn: the first timed pair
    assert relative_speeds([lstm, gru], preferred="gru") == {"t": "gru"}
    assert lstm["train_speed_vs_ref"] == pytest.approx(0.5)
    broken = {**record("rnn", []), "error": "boom"}
    assert relative_speeds([broken, lstm, gru]) == {"t": "lstm"}  # rnn untimed: not the reference


def test_pairs_timed_in_another_phase_get_no_ratio():
    rnn, gru = record("rnn", [1.0, 1.0], phase_id="p1"), record("gru", [2.0, 2.0], phase_id="p2")
    relative_speeds([rnn, gru])
    assert "train_speed_vs_ref" not in gru and gru["speed_reference"] == "rnn"


def test_stability_names_each_check_that_failed():
    calm = {"load": [0.5, 0.5, 0.5], "ticks": {"total": 1000, "steal": 0}, "kernel_ms": 1.0}
    after = {"load": [0.6, 0.5, 0.5], "ticks": {"total": 2000, "steal": 5}, "kernel_ms": 1.05}
    quiet = noise.stability(calm, after, cores=2)
    assert not quiet["unstable"] and quiet["unstable_reason"] == ""
    assert quiet["checked"] == ["load average", "steal", "reference kernel"]
    busy = {"load": [3.5, 1, 1], "ticks": {"total": 2000, "steal": 200}, "kernel_ms": 1.5}
    loud = noise.stability(calm, busy, cores=2)
    assert loud["unstable"]
    for words in ("load average 3.50 above the 2 cores", "20% of CPU time", "+50%"):
        assert words in loud["unstable_reason"]
    unknown = noise.stability({"load": None, "ticks": None, "kernel_ms": 1.0},
                              {"load": None, "ticks": None, "kernel_ms": 1.0}, cores=2)  # fmt: skip
    assert unknown["checked"] == ["reference kernel"] and not unknown["unstable"]


def test_steal_is_read_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 40 7 0\ncpu0 1 2 3\n")
    ticks = noise.cpu_ticks(stat)
    assert ticks == {"total": 1000, "steal": 40}  # guest time is inside user, not added
    assert noise.cpu_ticks(tmp_path / "missing") is None
    assert noise.steal_fraction({"total": 0, "steal": 0}, ticks) == pytest.approx(0.04)


def test_generation_is_timed_apart_per_generated_step(registry):
    for task, model in (("hello", "rnn"), ("sine", "gru"), ("consecutive", "transformer")):
        figures = time_pair(
            spec_for(registry, task, model), registry.tasks[task], registry.models[model],
            torch.device("cpu"),
        )  # fmt: skip
        assert "error" not in figures and "gen_error" not in figures
        assert 0 < figures["gen_ms_per_token_q1"] <= figures["gen_ms_per_token"]
        assert figures["gen_tokens_per_s"] == pytest.approx(1000 / figures["gen_ms_per_token"])
        length = figures["timesteps"]
        assert figures["gen_prefix"] == min(length // 2, 32)
        assert figures["gen_steps"] == min(16, length - figures["gen_prefix"])


class WrongShape(torch.nn.Module):
    """Breaks the contract: one output per sequence instead of one per step."""

    def __init__(self, shape):
        super().__init__()
        self.out = torch.nn.Linear(1, shape.output_size)

    def forward(self, x, state=None):
        return self.out(torch.zeros(x.shape[0], 1)), None


def test_a_contract_breaking_pair_is_checked_before_any_timing(registry):
    from harness.plugin_api.model import Model

    model = Model("wrong", "one output per sequence", lambda shape, *_: WrongShape(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's broadcast warning would come from a timed step
        figures = time_pair(spec_for(registry, "sine", "wrong"), registry.tasks["sine"], model,
                            torch.device("cpu"))  # fmt: skip
    assert figures["error"].startswith("contract: ")
    assert not any(k.startswith(("train_", "infer_", "gen_")) for k in figures)


def test_a_phase_records_noise_references_and_times_a_task_again_as_a_whole(registry, tmp_path):
    folder = RunFolder(tmp_path)
    specs = [spec_for(registry, "hello", m) for m in ("gru", "rnn")]
    first = run_timing(specs, folder, registry)
    assert first.timed == 2 and first.references == {"hello": "rnn"}
    assert set(first.noise) >= {"load_before", "kernel_ms_start", "kernel_drift", "unstable"}
    assert {r["phase_id"] for r in first.records} == {first.noise["phase_id"]}
    assert all(isinstance(r["speed_unstable"], bool) for r in first.records)
    grown = run_timing([*specs, spec_for(registry, "hello", "lstm")], folder, registry)
    assert grown.timed == 3  # one pair new: the whole task again, so its ratios stay side by side
    assert len({r["phase_id"] for r in grown.records}) == 1
    assert all("train_speed_vs_ref" in r for r in grown.records)
    again = run_timing(specs, folder, registry, reference="gru")
    assert again.timed == 0 and again.references == {"hello": "gru"}  # ratios from the rounds
    assert again.records[0]["train_speed_vs_ref"] == 1.0


def frame(models: dict[str, tuple[float, float]], scale: float = 1.0):
    """Finished cells of one task: per model (absolute train speed, ratio to rnn)."""
    import pandas as pd

    rows = []
    for model, (speed, ratio) in models.items():
        rows.append({"model": model, "train_throughput": speed * scale,
                     "train_throughput_q1": 0.95 * speed * scale,
                     "train_throughput_q3": 1.05 * speed * scale,
                     "train_speed_vs_ref": ratio, "train_speed_vs_ref_q1": 0.98 * ratio,
                     "train_speed_vs_ref_q3": 1.02 * ratio, "speed_reference": "rnn"})  # fmt: skip
    return pd.DataFrame(rows)


MODELS = {"rnn": (1000.0, 1.0), "gru": (500.0, 0.5), "lstm": (400.0, 0.4), "tf": (200.0, 0.2)}


def verdicts(a, b) -> dict[str, str]:
    judged = task_speeds(a, b, list(MODELS), threshold=0.10)
    return {model: v["train speed"][2] for model, v in judged.items()}


def test_compare_judges_speed_by_ratios_so_a_slower_machine_flags_nothing():
    slow_machine = frame(MODELS, scale=0.5)  # every absolute figure halved, the ratios unchanged
    assert set(verdicts(frame(MODELS), slow_machine).values()) == {"same"}


def test_compare_flags_the_one_model_that_slowed_and_only_it():
    slowed = {**MODELS, "gru": (250.0, 0.25)}
    assert verdicts(frame(MODELS), frame(slowed)) == {
        "rnn": "same", "gru": "slower", "lstm": "same", "tf": "same"
    }  # fmt: skip


def test_compare_flags_a_slower_reference_not_the_models_measured_against_it():
    # rnn twice as slow: every other model's ratio to it doubles
    slowed = {"rnn": (500.0, 1.0), "gru": (500.0, 1.0), "lstm": (400.0, 0.8), "tf": (200.0, 0.4)}
    assert verdicts(frame(MODELS), frame(slowed)) == {
        "rnn": "slower", "gru": "same", "lstm": "same", "tf": "same"
    }  # fmt: skip


def test_without_ratios_compare_falls_back_to_the_absolute_quartiles():
    a, b = frame(MODELS), frame(MODELS, scale=0.5)
    a, b = (f.drop(columns=[c for c in f if "vs_ref" in c]) for f in (a, b))
    assert set(verdicts(a, b).values()) == {"slower"}
