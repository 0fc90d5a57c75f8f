"""The memory tasks' generators against their definitions: adding, copy, selective-copy, mqar and
induction-heads (hand-worked small sequences, shapes, seeding, disjoint splits, -100 where
unscored, analytic baselines checked on generated data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.tasks import adding, copy_memory, induction_heads, mqar, selective_copy
from harness.tasks.adding import Adding
from harness.tasks.copy_memory import Copy
from harness.tasks.induction_heads import InductionHeads
from harness.tasks.mqar import MQAR
from harness.tasks.selective_copy import SelectiveCopy

IGNORE = -100

SMALL = {
    "adding": lambda: Adding(length=12, train_size=50, val_size=30, test_size=40),
    "copy": lambda: Copy(length=5, train_size=50, val_size=30, test_size=40),
    "selective-copy": lambda: SelectiveCopy(
        length=20, tokens=3, vocab=8, train_size=50, val_size=30, test_size=40
    ),
    "mqar": lambda: MQAR(
        vocab=32, length=24, pairs=3, train_examples=50, val_examples=30, test_examples=40
    ),
    "induction-heads": lambda: InductionHeads(
        length=16, vocab=6, train_size=50, val_size=30, test_size=40
    ),
}


def splits(data):
    return {
        "train": (data.train_inputs, data.train_targets),
        "val": (data.val_inputs, data.val_targets),
        "test": (data.test_inputs, data.test_targets),
    }


# ---- what every task shares ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_class_attributes(name):
    task = SMALL[name]()
    assert task.name == name
    assert task.tags == ("memory",)
    assert task.in_default_grid is False
    for module in (adding, copy_memory, selective_copy, mqar, induction_heads):
        assert module.HARNESS_API == "1.2"
    for metric, direction in task.metric_directions.items():
        assert direction in ("higher", "lower") and metric in task.metric_descriptions
    assert task.primary_metric.startswith(("test_", "task_"))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shapes_dtypes_and_sizes(name):
    task = SMALL[name]()
    data = task.make_data(0)
    sizes = {"train": 50, "val": 30, "test": 40}
    for split, (x, y) in splits(data).items():
        assert len(x) == len(y) == sizes[split]
        assert x.shape[1] == task.shape.length
        if task.shape.input_kind == "tokens":
            assert x.dtype == torch.int64 and x.dim() == 2
            assert int(x.min()) >= 0 and int(x.max()) < task.shape.input_size
            assert y.dtype == torch.int64 and y.shape == x.shape
            scored = y[y != IGNORE]
            assert (
                len(scored)
                and int(scored.min()) >= 0
                and int(scored.max()) < task.shape.output_size
            )
        else:
            assert x.dtype == torch.float32 and x.shape[-1] == task.shape.input_size
            assert y.dtype == torch.float32 and y.shape == (*x.shape[:2], 1)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_seeded_determinism(name):
    task = SMALL[name]()
    a, b, c = task.make_data(0), task.make_data(0), task.make_data(1)
    for (x, y), (x2, y2), (x3, _) in zip(
        splits(a).values(), splits(b).values(), splits(c).values()
    ):
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert not torch.equal(x, x3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_train_val_test_are_disjoint_draws(name):
    task = SMALL[name]()
    data = task.make_data(0)
    rows = {
        split: {tuple(row.flatten().tolist()) for row in x}
        for split, (x, _) in splits(data).items()
    }
    assert not rows["train"] & rows["test"]
    assert not rows["train"] & rows["val"]
    assert not rows["val"] & rows["test"]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_baselines_and_optimum_name_metrics(name):
    task = SMALL[name]()
    data = task.make_data(0)
    assert task.baselines(data)
    optimum = task.optimum(data)
    assert optimum["test_loss"] == 0.0
    own = {f"task_{m}" for m in task.metric_directions}
    for baseline in task.baselines(data):
        assert set(baseline.metrics) <= {"test_loss", "test_perplexity", "test_accuracy"} | own


class Oracle(torch.nn.Module):
    """Answers every scored step right (logits one-hot on the target)."""

    def __init__(self, inputs, targets, classes):
        super().__init__()
        self.table = {tuple(x.tolist()): y for x, y in zip(inputs, targets)}
        self.classes = classes

    def forward(self, inputs, state):
        ys = torch.stack([self.table[tuple(x.tolist())] for x in inputs])
        logits = torch.nn.functional.one_hot(ys.clamp(min=0), self.classes).float()
        return logits * 10, state


@pytest.mark.parametrize("name", ["copy", "selective-copy", "mqar", "induction-heads"])
def test_own_metrics_of_an_oracle_are_perfect(name):
    task = SMALL[name]()
    data = task.make_data(0)
    net = Oracle(data.test_inputs, data.test_targets, task.shape.output_size)
    metrics = task.evaluate(net, data, [])
    assert metrics and all(value == 1.0 for value in metrics.values())


# ---- adding ----------------------------------------------------------------------------------


def test_adding_sequences_hand_worked():
    inputs, answers = adding.make_sequences(np.random.default_rng(0), 200, 10, "sum")
    assert inputs.shape == (200, 10, 2)
    markers = inputs[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :5].sum(axis=1) == 1).all() and (markers[:, 5:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(answers, (inputs[..., 0] * markers).sum(axis=1))
    assert inputs[..., 0].min() >= 0 and inputs[..., 0].max() <= 1
    # the marks reach every position of their half
    assert set(np.flatnonzero(markers.sum(axis=0))) == set(range(10))

    inputs, answers = adding.make_sequences(np.random.default_rng(0), 200, 10, "hochreiter")
    values, markers = inputs[..., 0], inputs[..., 1]
    assert values.min() < -0.5 and values.max() <= 1
    np.testing.assert_allclose(answers, 0.5 + (values * markers).sum(axis=1) / 4)


def test_adding_targets_answer_at_last_step_only():
    task = Adding(length=8, train_size=5, val_size=5, test_size=5)
    assert task.scored_steps == 1 and task.accuracy_tolerance == 0.04
    data = task.make_data(3)
    x, y = data.test_inputs, data.test_targets
    assert (y[:, :-1] == 0).all()
    expected = (x[..., 0] * x[..., 1]).sum(dim=1)
    torch.testing.assert_close(y[:, -1, 0], expected)


@pytest.mark.parametrize("variant", ["sum", "hochreiter"])
def test_adding_baselines_analytic_and_empirical(variant):
    task = Adding(length=10, variant=variant, train_size=1, val_size=1, test_size=200_000)
    guess, mse, one_mse = adding.ANALYTIC[variant]
    assert mse == pytest.approx({"sum": 1 / 6, "hochreiter": 1 / 24}[variant])
    assert one_mse == pytest.approx(mse / 2)
    data = task.make_data(0)
    rows = {b.name: b.metrics for b in task.baselines(data)}
    assert rows["mean"]["test_loss"] == mse
    x, y = data.test_inputs.double(), data.test_targets[:, -1, 0].double()
    error = guess - y
    assert float((error**2).mean()) == pytest.approx(mse, rel=0.01)
    solved = float((error.abs() < 0.04).double().mean())
    assert solved == pytest.approx(rows["mean"]["task_solved"], abs=0.003)
    assert rows["mean"]["task_solved"] == pytest.approx(
        {"sum": 0.0784, "hochreiter": 0.1536}[variant]
    )
    marked = x[..., 1] == 1
    second = x[..., 0].masked_fill(~marked, 0)[:, 5:].sum(dim=1)
    one = second + 0.5 if variant == "sum" else 0.5 + second / 4
    assert float(((one - y) ** 2).mean()) == pytest.approx(
        rows["second-only"]["test_loss"], rel=0.02
    )


def test_adding_evaluate_on_a_perfect_and_a_constant_net():
    task = Adding(length=6, train_size=2, val_size=2, test_size=300)
    data = task.make_data(0)

    def perfect(inputs, state):
        return (inputs[..., :1] * inputs[..., 1:]).sum(dim=1, keepdim=True).expand(
            -1, inputs.shape[1], 1
        ), state

    def constant(inputs, state):
        return torch.ones(*inputs.shape[:2], 1), state

    metrics = task.evaluate(perfect, data, [])
    assert metrics["solved"] == 1.0 and metrics["last_step_mse"] == pytest.approx(0.0, abs=1e-10)
    assert task.evaluate(constant, data, [])["last_step_mse"] == pytest.approx(1 / 6, rel=0.2)


def test_adding_rejects_bad_options():
    with pytest.raises(ValueError, match="variant"):
        Adding(variant="product")
    with pytest.raises(ValueError, match="length"):
        Adding(length=1)


# ---- copy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("score", ["recall", "all"])
def test_copy_sequence_hand_worked(score):
    inputs, targets = copy_memory.make_sequences(np.random.default_rng(0), 3, 4, score)
    assert inputs.shape == targets.shape == (3, 24)
    for x, y in zip(inputs, targets):
        symbols = x[:10]
        assert ((symbols >= 1) & (symbols <= 8)).all()
        assert (x[10:13] == 0).all()  # T - 1 = 3 blanks
        assert x[13] == 9  # the delimiter
        assert (x[14:] == 0).all()  # 10 blanks
        assert (y[-10:] == symbols).all()
        assert (y[:-10] == (IGNORE if score == "recall" else 0)).all()


def test_copy_data_uses_every_symbol_and_score_option():
    data = Copy(length=3, train_size=500, val_size=1, test_size=1).make_data(0)
    assert set(data.train_inputs[:, :10].unique().tolist()) == set(range(1, 9))
    all_steps = Copy(length=3, score="all", train_size=500, val_size=1, test_size=1).make_data(0)
    assert torch.equal(all_steps.train_inputs, data.train_inputs)
    assert (all_steps.train_targets[:, :-10] == 0).all()


@pytest.mark.parametrize("score", ["recall", "all"])
def test_copy_memoryless_baseline(score):
    length = 30
    task = Copy(length=length, score=score, train_size=1, val_size=1, test_size=20_000)
    data = task.make_data(0)
    row = task.baselines(data)[0].metrics
    expected = math.log(8) if score == "recall" else 10 * math.log(8) / (length + 20)
    assert row["test_loss"] == pytest.approx(expected)
    # the memoryless predictor, realized: blank until the delimiter, then uniform over 1..8
    steps = length + 20
    logits = torch.full((steps, 10), -1e9)
    logits[: steps - 10, 0] = 0.0
    logits[steps - 10 :, 1:9] = 0.0
    logits = logits.expand(len(data.test_inputs), -1, -1)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 10), data.test_targets.reshape(-1), ignore_index=IGNORE
    )
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # a guess of one fixed symbol recalls 1/8 of the symbols
    targets = data.test_targets[:, -10:]
    assert float((targets == 1).float().mean()) == pytest.approx(
        row["task_symbol_accuracy"], abs=0.01
    )


# ---- selective copy --------------------------------------------------------------------------


def test_selective_copy_hand_worked():
    vocab, length, tokens = 8, 20, 3
    blank, copy = 6, 7
    for placement in ("mad", "uniform"):
        inputs, targets = selective_copy.make_sequences(
            np.random.default_rng(0), 500, length, tokens, vocab, placement
        )
        assert inputs.shape == targets.shape == (500, length)
        region = length - tokens - 1
        assert (inputs[:, region] == copy).all()
        assert (inputs[:, region + 1 :] == blank).all()
        data_steps = inputs[:, :region] != blank
        assert (data_steps.sum(axis=1) == tokens).all()
        for x, y in zip(inputs, targets):
            shown = x[:region][x[:region] != blank]
            assert (y[-tokens:] == shown).all()  # in their order of occurrence
            assert (y[:-tokens] == IGNORE).all()
        last = region - 1
        if placement == "mad":
            # np.insert never puts a blank after the last data token
            assert data_steps[:, last].all()
        else:
            assert not data_steps[:, last].all()
            assert data_steps[:, 0].any() and data_steps[:, last].any()


def test_selective_copy_mad_blank_counts_are_multinomial():
    # mad-lab: every blank is inserted before a uniformly chosen data token
    inputs, _ = selective_copy.make_sequences(np.random.default_rng(1), 4000, 20, 3, 8, "mad")
    region = 20 - 3 - 1
    first = (inputs[:, :region] != 6).argmax(axis=1)  # blanks before the first token
    blanks = region - 3  # 13 blanks, each before token 0 with probability 1/3
    assert first.mean() == pytest.approx(blanks / 3, rel=0.03)


def test_selective_copy_baseline_and_options():
    task = SelectiveCopy()
    assert (task.vocab, task.shape.input_size) == (16, 16)
    row = task.baselines(None)[0].metrics
    assert row["test_accuracy"] == 1 / 14 and row["test_loss"] == pytest.approx(math.log(14))
    data = SelectiveCopy(length=20, tokens=3, vocab=8, test_size=20_000).make_data(0)
    scored = data.test_targets[:, -3:]
    assert float((scored == 0).float().mean()) == pytest.approx(1 / 6, abs=0.01)
    with pytest.raises(ValueError, match="length"):
        SelectiveCopy(length=7, tokens=3)
    with pytest.raises(ValueError, match="placement"):
        SelectiveCopy(placement="random")


# ---- mqar ------------------------------------------------------------------------------------


def test_mqar_hand_worked():
    vocab, length, pairs = 40, 24, 3
    inputs, targets = mqar.make_sequences(np.random.default_rng(0), 300, vocab, length, pairs)
    assert inputs.shape == targets.shape == (300, length)
    half = vocab // 2
    for x, y in zip(inputs, targets):
        keys, values = x[0 : 2 * pairs : 2], x[1 : 2 * pairs : 2]
        assert ((keys >= 1) & (keys < half)).all() and len(set(keys)) == pairs
        assert ((half <= values) & (values < vocab)).all() and len(set(values)) == pairs
        assert (y[: 2 * pairs] == IGNORE).all()
        query_steps = np.flatnonzero(y != IGNORE)
        assert len(query_steps) == pairs
        assert ((query_steps - 2 * pairs) % 2 == 0).all()  # even offsets into the query region
        lookup = dict(zip(keys, values))
        for step in query_steps:
            assert y[step] == lookup[x[step]]  # the value of the key queried at that step
        assert sorted(x[query_steps]) == sorted(keys)  # every key queried once


def test_mqar_gaps_follow_the_power_law_and_order():
    space = 10
    p = mqar.power_law(space)
    assert p[0] > p[1] > p[-1] and p.sum() == pytest.approx(1)
    np.testing.assert_allclose(p[0] / p[1], 2**0.99)
    # first draws without replacement match p; a second draw matches sum_i p_i p_j / (1 - p_i)
    draws = mqar.sample_without_replacement(np.random.default_rng(0), 200_000, space, 2, p)
    first = np.bincount(draws[:, 0], minlength=space) / len(draws)
    np.testing.assert_allclose(first, p, atol=0.004)
    second = np.bincount(draws[:, 1], minlength=space) / len(draws)
    expected = np.array(
        [sum(p[i] * p[j] / (1 - p[i]) for i in range(space) if i != j) for j in range(space)]
    )
    np.testing.assert_allclose(second, expected, atol=0.004)
    assert (draws[:, 0] != draws[:, 1]).all()


def test_mqar_profiles_and_overrides():
    cpu = MQAR()
    assert cpu.settings == mqar.PROFILES["cpu"]
    paper = MQAR(profile="paper")
    assert (paper.settings["vocab"], paper.settings["length"], paper.settings["pairs"]) == (
        8192,
        64,
        4,
    )
    assert paper.settings["train_examples"] == 100_000
    assert paper.settings["test_examples"] == 3000
    bigger = MQAR(profile="paper", length=256, pairs=16)
    assert (bigger.settings["length"], bigger.settings["pairs"]) == (256, 16)
    assert bigger.shape.input_size == 8192
    assert MQAR().with_options(vocab="64").shape.output_size == 64
    with pytest.raises(ValueError, match="length"):
        MQAR(length=12, pairs=4)
    with pytest.raises(ValueError, match="profile"):
        MQAR(profile="gpu")


def test_mqar_baselines_analytic_and_empirical():
    task = MQAR(vocab=32, length=24, pairs=3, test_examples=5000)
    data = task.make_data(0)
    rows = {b.name: b.metrics for b in task.baselines(data)}
    assert rows["chance"]["test_accuracy"] == 2 / 32
    assert rows["in-context"]["test_accuracy"] == pytest.approx(1 / 3)
    x, y = data.test_inputs, data.test_targets
    scored = y != IGNORE
    # guessing one fixed value scores ~2/V; guessing the first context value scores ~1/pairs
    assert float((y[scored] == 16).float().mean()) == pytest.approx(2 / 32, abs=0.01)
    first_value = x[:, 1:2].expand_as(y)
    assert float((y[scored] == first_value[scored]).float().mean()) == pytest.approx(
        1 / 3, abs=0.015
    )


# ---- induction heads -------------------------------------------------------------------------


def test_induction_heads_hand_worked():
    vocab, length = 6, 16
    inputs, targets, trigger = induction_heads.make_sequences(
        np.random.default_rng(0), 2000, length, vocab
    )
    special = vocab - 1
    assert (inputs[:, -1] == special).all()
    assert ((inputs == special).sum(axis=1) == 2).all()
    rows = np.arange(len(inputs))
    assert (inputs[rows, trigger] == special).all()
    assert (targets[:, -1] == inputs[rows, trigger + 1]).all()
    assert (targets[:, :-1] == IGNORE).all()
    assert trigger.min() == 0 and trigger.max() == length - 4  # Safari's range
    assert (targets[:, -1] < special).all()


def test_induction_heads_baseline_and_own_metrics():
    task = InductionHeads(length=16, vocab=6, test_size=20_000)
    data = task.make_data(0)
    row = task.baselines(data)[0].metrics
    assert row["test_accuracy"] == 1 / 5 and row["test_loss"] == pytest.approx(math.log(5))
    y = data.test_targets[:, -1]
    assert float((y == 0).float().mean()) == pytest.approx(1 / 5, abs=0.01)
    assert data.info["test_triggers"][:3] == [
        int((row[:-1] == 5).nonzero()[0]) for row in data.test_inputs[:3]
    ]

    def guess_zero(inputs, state):
        logits = torch.zeros(*inputs.shape, 6)
        logits[..., 0] = 1.0
        return logits, state

    metrics = task.evaluate(guess_zero, data, [])
    assert metrics["accuracy_far"] == pytest.approx(0.2, abs=0.02)
    assert metrics["accuracy_near"] == pytest.approx(0.2, abs=0.02)


# ---- a tiny smoke: a GRU takes a few steps on each task without error -------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_tiny_training_smoke(name):
    task = SMALL[name]()
    data = task.make_data(0)
    torch.manual_seed(0)
    size = task.shape.input_size
    gru = torch.nn.GRU(size, 16, batch_first=True)
    head = torch.nn.Linear(16, task.shape.output_size)

    def net(inputs, state):
        if task.shape.input_kind == "tokens":
            inputs = torch.nn.functional.one_hot(inputs, size).float()
        out, state = gru(inputs, state)
        return head(out), state

    params = [*gru.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=0.01)
    x, y = data.train_inputs[:8], data.train_targets[:8]
    for _ in range(2):
        out, _ = net(x, None)
        if task.shape.output_kind == "values":
            loss = ((out[:, -1] - y[:, -1]) ** 2).mean()
        else:
            loss = torch.nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    with torch.no_grad():
        metrics = task.evaluate(net, data, [])
    assert set(metrics) == set(task.metric_directions)
