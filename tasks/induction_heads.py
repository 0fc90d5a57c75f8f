"""The `induction-heads` task: after a special token, recall what followed it the first time.

As Safari/H3's ``generate_induction_head`` (src/dataloaders/synthetics.py, one trigger,
induction_len 1): the first ``length - 1`` steps are tokens drawn uniformly from the
``vocab - 1`` ordinary tokens 0 .. vocab-2; one position p, uniform over 0 .. length - 4, is
overwritten with the special token vocab-1, so the token at p + 1 follows it; the last step is
the special token again and its target is the token that followed the first one. Only that
last step is scored: every other target is -100.

Chance: a uniform guess over the vocab - 1 ordinary tokens, accuracy 1/(vocab - 1), loss
ln(vocab - 1).

Own metrics split the test accuracy by where the trigger was: ``accuracy_far`` (first half of
the sequence, a gap of more than half the length to recall across) and ``accuracy_near``.

Where this differs from Safari and why: Safari's vocabulary also holds a no-op token ``.`` that
the induction-head data never uses; here ``vocab`` counts only the ordinary tokens and the
special one, so vocab 16 gives 15 ordinary tokens. Safari trains on the next-token loss at every
step and masks all but the last only in the test split; the other steps' targets are uniform
random tokens that no model can predict, so here they are -100 in every split (the same optimum,
less noise in the gradient). Safari also deduplicates its examples; with 15^(length - 2)
possible sequences (15^30 by default) a collision is practically impossible and the splits come
from separate seeded streams. Safari's example setting is vocab 20, 30 + 1 steps; the H3 paper's
figure uses longer sequences (vocab 16 at length 256 is a common benchmark setting). The default
length here is 32, for the CPU budget (see below); ``length=256`` gives the long setting.

Measured (2-core CPU shared with other jobs, `uptime` load 2-8, torch.set_num_threads(1), plain
torch nn.LSTM/GRU/RNN(tanh) over one-hot inputs with a linear head, Adam, clip 1.0, cross-
entropy on the last step, epoch picked on validation loss, seed 0, default recipe and options):

* lstm: test accuracy 1.0 (val accuracy 1.0 from epoch 6), 17 s CPU
* gru: 1.0 (from epoch 2), 30 s CPU
* rnn (tanh): 0.07, chance (1/15 = 0.067), 13 s CPU

CPU is process time on one thread (wall 25-70 s: the machine was shared, load 3-8). Rejected:
length 64 with 2000 training sequences (20 epochs): the LSTM memorizes the training set (train
loss 1.65, validation loss rising) and tests at chance; length 64 with 8000 (10 epochs): the
LSTM gets it at epoch 8 of 10, 38 s CPU, too late and too costly for the suite's budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import Baseline, Recipe, Task, TaskData, TaskShape, hookimpl
from harness.tasks.common import require_positive

HARNESS_API = "1.2"  # 1.2: -100 targets are not scored; tags

IGNORE = -100  # PyTorch's ignore_index: a target the core does not score


def make_sequences(
    rng: np.random.Generator, count: int, length: int, vocab: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs and targets (count, length) int64, and the trigger positions (count,)."""
    special = vocab - 1
    inputs = rng.integers(0, special, size=(count, length)).astype(np.int64)
    trigger = rng.integers(0, length - 3, size=count)
    rows = np.arange(count)
    inputs[rows, trigger] = special
    inputs[:, -1] = special
    targets = np.full((count, length), IGNORE, dtype=np.int64)
    targets[:, -1] = inputs[rows, trigger + 1]
    return inputs, targets, trigger


@dataclass
class InductionHeads(Task):
    length: int = 32
    vocab: int = 16
    train_size: int = 4000
    val_size: int = 500
    test_size: int = 1000

    name = "induction-heads"
    description = (
        "induction heads (H3/Safari): a special token once mid-sequence, then again at the end "
        "of 32 steps; answer the token that followed it (vocab 16); only the last step scored"
    )
    tags = ("memory",)
    primary_metric = "test_accuracy"
    higher_is_better = True
    in_default_grid = False
    validation = "val_size fresh sequences from the task's own seed stream (stream 2)"
    recipe = Recipe(epochs=15, batch_size=32, lr=0.01, optimizer="adam", hidden_size=64, clip=1.0)
    metric_descriptions = {
        "accuracy_far": "test accuracy where the trigger lies in the first half of the sequence",
        "accuracy_near": "test accuracy where the trigger lies in the second half",
    }
    metric_directions = {"accuracy_far": "higher", "accuracy_near": "higher"}

    def __post_init__(self) -> None:
        if self.length < 4:
            raise ValueError(f"length must be at least 4, not {self.length}")
        if self.vocab < 3:
            raise ValueError(f"vocab must be at least 3, not {self.vocab}")
        require_positive(self, "train_size", "val_size", "test_size")

    @property
    def shape(self) -> TaskShape:  # type: ignore[override]
        return TaskShape("tokens", self.vocab, "classes", self.vocab, length=self.length)

    def make_data(self, seed: int) -> TaskData:
        import torch

        triggers = {}

        def tensors(stream: int, count: int):
            x, y, triggers[stream] = make_sequences(
                np.random.default_rng([seed, stream]), count, self.length, self.vocab
            )
            return torch.from_numpy(x), torch.from_numpy(y)

        train, test = tensors(0, self.train_size), tensors(1, self.test_size)
        val = tensors(2, self.val_size)
        return TaskData(
            *train,
            *test,
            info={"test_triggers": triggers[1].tolist()},
            val_inputs=val[0],
            val_targets=val[1],
        )

    def evaluate(self, net: Any, data: TaskData, curve: list[dict[str, Any]]) -> dict[str, Any]:
        from harness.training.metrics import predict

        predicted = predict(net, data.test_inputs)[:, -1].argmax(-1).cpu()
        right = (predicted == data.test_targets[:, -1].cpu()).numpy()
        # the trigger: the first special token (the last step is the second)
        inputs = data.test_inputs.cpu().numpy()
        trigger = (inputs[:, :-1] == self.vocab - 1).argmax(axis=1)
        far = trigger < self.length // 2
        return {
            "accuracy_far": float(right[far].mean()) if far.any() else float("nan"),
            "accuracy_near": float(right[~far].mean()) if (~far).any() else float("nan"),
        }

    def optimum(self, data: TaskData) -> dict[str, float]:
        return {
            "test_loss": 0.0,
            "test_perplexity": 1.0,
            "test_accuracy": 1.0,
            "task_accuracy_far": 1.0,
            "task_accuracy_near": 1.0,
        }

    def baselines(self, data: TaskData) -> list[Baseline]:
        ordinary = self.vocab - 1
        return [
            Baseline(
                "chance",
                f"a uniform guess over the {ordinary} ordinary tokens",
                {
                    "test_loss": math.log(ordinary),
                    "test_perplexity": float(ordinary),
                    "test_accuracy": 1 / ordinary,
                    "task_accuracy_far": 1 / ordinary,
                    "task_accuracy_near": 1 / ordinary,
                },
            )
        ]


@hookimpl
def register_tasks(register) -> None:
    register(InductionHeads())
