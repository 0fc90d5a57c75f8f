"""Two overhead figures, each pair timed side by side in one group.

1. The harness's training cell (:func:`harness.training.train.train_cell`, the consecutive
   task's recipe, the ``rnn`` model) against a hand-written plain PyTorch loop doing the same
   work: same data, initialization, shuffling, optimizer, clipping, per-epoch held-out loss and
   accuracy, final train/held-out loss. The plain loop reaches bit-identical losses (checked
   below), so the gap is the harness's own cost (plus its extras: the probe and the inference
   timing).
2. ``scratch-rnn`` against ``rnn`` (``nn.RNN``) per training step at batch 50, 20 steps, hidden
   256 on consecutive (vocabulary 20, one-hot inputs).

Timing figures go to extra_info; tests here assert correctness only, never speed.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.support import measure
from harness.training.train import make_training_step, train_cell

pytestmark = pytest.mark.overhead

LOOP_TASK, LOOP_MODEL = "consecutive", "rnn"
LOOP_ROUNDS, LOOP_WARMUP = 5, 1
STEP_TASK, STEP_HIDDEN = "consecutive", 256
STEP_ROUNDS = 50


class PlainRNN(nn.Module):
    """One-hot, ``nn.RNN``, linear head: built in the same order as the ``rnn`` plugin's net."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.RNN(vocab, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(F.one_hot(x, self.vocab).float())
        return self.head(hidden)


def plain_loop(task, recipe, seed: int, device: torch.device) -> dict[str, float]:
    """What a person writes by hand for the same recipe; returns the final losses."""
    data = task.make_data(seed).to(device)  # train_cell builds its data inside too
    vocab = task.shape.input_size
    torch.manual_seed(seed)
    net = PlainRNN(vocab, recipe.hidden_size).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    order = torch.Generator().manual_seed(seed)
    xs, ys, test_x, test_y = (
        data.train_inputs,
        data.train_targets,
        data.test_inputs,
        data.test_targets,
    )

    def loss_of(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, vocab), y.reshape(-1))

    for _ in range(recipe.epochs):
        net.train()
        perm = torch.randperm(len(xs), generator=order)
        total = 0.0
        for first in range(0, len(xs), recipe.batch_size):
            index = perm[first : first + recipe.batch_size].to(device)
            optimizer.zero_grad()
            loss = loss_of(net(xs[index]), ys[index])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), recipe.clip)
            optimizer.step()
            total += loss.item() * len(index)
        net.eval()
        with torch.no_grad():
            out = net(test_x)
            test_loss = loss_of(out, test_y).item()
            test_accuracy = (out.argmax(-1) == test_y).float().mean().item()
    with torch.no_grad():
        train_loss = loss_of(net(xs), ys).item()
        test_loss = loss_of(net(test_x), test_y).item()
    return {"train_loss": train_loss, "test_loss": test_loss, "test_accuracy": test_accuracy}


def _loop_recipe(task, benchmark=None):
    recipe = task.recipe
    handwritten = recipe.optimizer == "adam" and recipe.clip is not None and not recipe.carry_state
    assert handwritten and task.scored_steps is None, (
        "the plain loop below hand-writes the consecutive recipe as it stood; update it"
    )
    if benchmark is not None and benchmark.disabled:  # a smoke run checks the code, not time
        recipe = recipe.with_overrides(epochs=1)
    return recipe


def _need(registry, task_name, model_name):
    if task_name not in registry.tasks or model_name not in registry.models:
        pytest.skip(f"needs task {task_name!r} and model {model_name!r} installed")
    return registry.tasks[task_name], registry.models[model_name]


def test_plain_loop_matches_harness(registry, device):
    """The two loops compared below do the same work: the same losses to the last bit."""
    task, model = _need(registry, LOOP_TASK, LOOP_MODEL)
    recipe = _loop_recipe(task).with_overrides(epochs=2)
    harness = train_cell(task, model, 0, device, recipe).metrics
    plain = plain_loop(task, recipe, 0, device)
    for key in ("train_loss", "test_loss"):
        assert harness[key] == pytest.approx(plain[key], rel=1e-6), key


@pytest.mark.parametrize("variant", ["harness", "plain"])
def test_training_loop(benchmark, registry, device, variant):
    """A whole cell of the recipe: harness.training.train.train_cell vs the hand-written loop."""
    task, model = _need(registry, LOOP_TASK, LOOP_MODEL)
    recipe = _loop_recipe(task, benchmark)
    if variant == "harness":
        run = lambda: train_cell(task, model, 0, device, recipe)  # noqa: E731
    else:
        run = lambda: plain_loop(task, recipe, 0, device)  # noqa: E731
    data = task.make_data(0)
    n_train, steps = data.train_inputs.shape[:2]
    benchmark.group = f"overhead: training loop ({LOOP_TASK}, {LOOP_MODEL})"
    info = {
        "kind": "overhead",
        "comparison": "training loop",
        "variant": variant,
        "task": LOOP_TASK,
        "model": LOOP_MODEL,
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "timesteps": steps,
        "hidden_size": recipe.hidden_size,
        "optimizer": recipe.optimizer,
    }
    measure(
        benchmark,
        run,
        device,
        rounds=LOOP_ROUNDS,
        warmup_rounds=LOOP_WARMUP,
        items=recipe.epochs * n_train * steps,
        info=info,
    )


@pytest.mark.parametrize("model_name", ["rnn", "scratch-rnn"])
def test_step_vs_torch_rnn(benchmark, registry, task_data, device, model_name):
    """One training step of scratch-rnn against nn.RNN on the same batch and recipe."""
    task, model = _need(registry, STEP_TASK, model_name)
    recipe = task.recipe.with_overrides(hidden_size=STEP_HIDDEN)
    data = task_data(task)
    x = data.train_inputs[: recipe.batch_size].to(device)
    y = data.train_targets[: recipe.batch_size].to(device)
    torch.manual_seed(0)
    net = model.make(task.shape, STEP_HIDDEN, recipe.num_layers).to(device).train()
    step = make_training_step(net, recipe, task.shape.output_kind, task.scored_steps)
    benchmark.group = (
        f"overhead: scratch-rnn vs nn.RNN ({STEP_TASK}, batch {x.shape[0]}, "
        f"{x.shape[1]} steps, hidden {STEP_HIDDEN})"
    )
    info = {
        "kind": "overhead",
        "comparison": "scratch-rnn vs rnn",
        "variant": model_name,
        "task": STEP_TASK,
        "model": model_name,
        "phase": "train",
        "batch_size": x.shape[0],
        "timesteps": x.shape[1],
        "hidden_size": STEP_HIDDEN,
        "optimizer": recipe.optimizer,
    }
    measure(
        benchmark,
        lambda: step(x, y, None),
        device,
        rounds=STEP_ROUNDS,
        items=x.shape[0] * x.shape[1],
        info=info,
    )
