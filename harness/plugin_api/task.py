"""What a task is: its data, the recipe it is trained with, and the metrics that judge it.

A task plugin subclasses :class:`Task` (a dataclass whose fields are the task's options, such as
generator parameters) and registers an instance through the ``register_tasks`` hook.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # torch stays out of start-up: only type checkers import it here
    import torch

INPUT_KINDS = ("tokens", "values")
OUTPUT_KINDS = ("classes", "values")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine")
DIRECTIONS = ("higher", "lower")
#: A class target with this value is not scored: it enters neither the loss nor perplexity nor
#: accuracy (PyTorch's ``ignore_index``). API 1.2: what a recall task (MQAR, induction heads,
#: copy memory) uses to score only its query or recall positions.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class TaskShape:
    """What a model must accept and produce for a task.

    ``input_kind`` is ``"tokens"`` (inputs are (batch, time) integer ids below ``input_size``) or
    ``"values"`` (inputs are (batch, time, input_size) floats). ``output_kind`` is ``"classes"``
    (per-step logits over ``output_size`` classes) or ``"values"`` (per-step regression outputs).
    ``length`` (API 1.2): the task's sequence length where it has one, so a model that serves
    sequences only up to a length can decline in ``cannot_serve``; ``None`` when the task does
    not say (the model is then built with the length of its training data filled in).
    """

    input_kind: str
    input_size: int
    output_kind: str
    output_size: int
    length: int | None = None

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, not {self.input_kind!r}")
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind must be one of {OUTPUT_KINDS}, not {self.output_kind!r}")
        if self.input_size < 1 or self.output_size < 1:
            raise ValueError("input_size and output_size must be positive")
        if self.length is not None and self.length < 1:
            raise ValueError(f"length must be positive or None, not {self.length}")


@dataclass(frozen=True)
class LogUniform:
    """A search dimension: a positive float drawn log-uniformly from [low, high] (e.g. lr)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, not {self.low}, {self.high}")


@dataclass(frozen=True)
class Choice:
    """A search dimension: one of a few values (e.g. hidden sizes, weight decay on/off)."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if not values:
            raise ValueError("Choice needs at least one value")
        object.__setattr__(self, "values", tuple(dict.fromkeys(values)))


#: What a recipe's ``search`` maps each tuned :class:`Recipe` field to.
Dimension = LogUniform | Choice


@dataclass(frozen=True)
class Recipe:
    """How a task is trained by default; users can override every field for every task, from
    the command line (``--recipe FIELD=VALUE``) or the config file.

    The loss follows from the output kind (cross-entropy for classes, MSE for values).
    ``clip`` is the global L2 norm gradients are clipped to (``None``: no clipping).
    ``schedule``: ``"constant"`` or ``"cosine"`` (the learning rate anneals to zero over the
    epochs, which lets a plain RNN settle instead of hovering around a plateau).
    ``carry_state``: batches are consecutive chunks of long streams, so the state is carried
    from one batch to the next and detached (truncated BPTT); otherwise every window starts
    from a fresh zero state and batches are shuffled.
    ``search``: the space `harness tune` searches, recipe field -> :class:`LogUniform` or
    :class:`Choice`; ``None`` (default) means :meth:`search_space`'s default around this recipe.
    It does not change what a cell trains, so it is no part of a cell's config hash.
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    hidden_size: int = 64
    num_layers: int = 1
    clip: float | None = 1.0
    weight_decay: float = 0.0
    carry_state: bool = False
    schedule: str = "constant"
    search: Mapping[str, Dimension] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        for name in ("epochs", "batch_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, not {self.lr}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"clip must be positive or None (no clipping), not {self.clip}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must not be negative, not {self.weight_decay}")
        tunable = {f.name for f in dataclasses.fields(self)} - {"search"}
        for name, dimension in (self.search or {}).items():
            if name not in tunable:
                raise ValueError(f"search: {name!r} is not a recipe field ({', '.join(tunable)})")
            if not isinstance(dimension, (LogUniform, Choice)):
                raise ValueError(f"search: {name!r} must be a LogUniform or a Choice")

    def search_space(self) -> dict[str, Dimension]:
        """What `harness tune` searches: the declared ``search``, or by default the learning
        rate log-uniformly over a decade either side of this one, the hidden size from half,
        the same and twice this one, and weight decay off or on."""
        if self.search is not None:
            return dict(self.search)
        return {
            "lr": LogUniform(self.lr / 10, self.lr * 10),
            "hidden_size": Choice(
                max(1, self.hidden_size // 2), self.hidden_size, 2 * self.hidden_size
            ),
            "weight_decay": Choice(0.0, self.weight_decay or 1e-4),
        }

    def with_overrides(self, **overrides: Any) -> Recipe:
        """A copy with the given fields replaced; ``None`` values leave a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TaskData:
    """Train, validation and test tensors for one seed, shaped for the task's :class:`TaskShape`.

    Inputs are (N, T) int64 for tokens or (N, T, F) float32 for values; targets are (N, T) int64
    for classes or (N, T, O) float32 for values. The validation split picks the epoch whose
    weights are reported; the test split is evaluated once, on that model. A task that gives no
    validation split (``val_inputs`` is ``None``, as in plugins written for API 1.0) gets one
    carved from its training data by :func:`with_validation`. ``info`` carries anything the
    task's own metrics need later (e.g. the raw test curve parameters).
    """

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    val_inputs: torch.Tensor | None = None
    val_targets: torch.Tensor | None = None

    def to(self, device: Any) -> TaskData:
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        return TaskData(
            self.train_inputs.to(device),
            self.train_targets.to(device),
            self.test_inputs.to(device),
            self.test_targets.to(device),
            self.info,
            move(self.val_inputs),
            move(self.val_targets),
        )

    def validation_view(self) -> TaskData:
        """The validation split in the test split's place.

        A task's ``evaluate`` reads ``data.test_*``; handed this view it scores the validation
        split instead, so a task's own metric can select the epoch without touching the test set.
        """
        if self.val_inputs is None or self.val_targets is None:
            raise ValueError("this TaskData has no validation split (see with_validation)")
        return dataclasses.replace(self, test_inputs=self.val_inputs, test_targets=self.val_targets)


#: Share of the training sequences held out as validation for a task that gives none.
VALIDATION_FRACTION = 0.1


def with_validation(data: TaskData) -> tuple[TaskData, str]:
    """``data`` with a validation split, and one line saying where it came from.

    A task's own split is kept. Otherwise the last 10% of the training sequences (at least one)
    become validation and are no longer trained on: deterministic, and for tasks whose training
    rows are overlapping windows or consecutive chunks of one stream, the tail shares the least
    with the rest. With a single training sequence there is nothing to carve, so validation is
    that sequence itself (the run says so).
    """
    if data.val_inputs is not None and data.val_targets is not None:
        return data, "the task's own validation split"
    total = data.train_inputs.shape[0]
    if total < 2:
        carved = dataclasses.replace(
            data, val_inputs=data.train_inputs, val_targets=data.train_targets
        )
        return carved, "the single training sequence itself (too few to carve a split from)"
    count = max(1, round(total * VALIDATION_FRACTION))
    carved = dataclasses.replace(
        data,
        train_inputs=data.train_inputs[:-count],
        train_targets=data.train_targets[:-count],
        val_inputs=data.train_inputs[-count:],
        val_targets=data.train_targets[-count:],
    )
    return carved, (
        f"carved from the training data: its last {count} of {total} sequences "
        f"({count / total:.0%}), not trained on"
    )


@dataclass(frozen=True)
class Baseline:
    """A trivial predictor's test score, shown beside the models so a number reads right."""

    name: str
    description: str
    metrics: dict[str, float]


@dataclass
class Task(ABC):
    """A benchmark task. Subclass it as a dataclass; its fields are the task's options.

    Class attributes to set: ``name``, ``description``, ``shape``, ``recipe``,
    ``primary_metric`` (a test column of the results table, e.g. ``"test_accuracy"``),
    ``higher_is_better``, and optionally ``metric_descriptions`` for the task's own metrics,
    ``metric_directions`` (``"higher"`` or ``"lower"`` is better, per own metric: the gap to the
    best achievable needs it, and a metric without one gets no gap rather than a guess),
    ``accuracy_tolerance`` (value outputs only: a prediction within it counts as correct),
    ``scored_steps`` (only the last N time steps enter the loss and the core's loss, perplexity
    and accuracy: 1 for a sequence-to-one task such as the adding problem; ``None``: every step)
    and ``in_default_grid`` (``False`` for a heavy task that runs only when named with ``-t``).
    ``tags`` (API 1.2): words that group tasks into suites (``memory``, ``toy``), picked with
    ``harness run --suite TAG`` and shown by ``harness list``.
    ``validation`` (one line on where ``make_data``'s validation split comes from, for
    run.json). ``shape`` and ``scored_steps`` may be properties computed from the options.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    shape: ClassVar[TaskShape]
    recipe: ClassVar[Recipe]
    primary_metric: ClassVar[str] = "test_loss"
    higher_is_better: ClassVar[bool] = False
    accuracy_tolerance: ClassVar[float | None] = None
    scored_steps: ClassVar[int | None] = None
    metric_descriptions: ClassVar[dict[str, str]] = {}
    metric_directions: ClassVar[dict[str, str]] = {}
    in_default_grid: ClassVar[bool] = True
    validation: ClassVar[str] = ""
    tags: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def make_data(self, seed: int) -> TaskData:
        """Build train, validation and test data for ``seed``; the same seed, the same data."""

    def evaluate(self, net: Any, data: TaskData, curve: list[dict[str, Any]]) -> dict[str, Any]:
        """The task's own metrics for a trained ``net`` (in eval mode, under no_grad), on
        ``data.test_*``.

        The harness calls it once on the test split of the selected model and, when the primary
        metric is one of these, once per epoch on :meth:`TaskData.validation_view`. ``curve``
        holds the per-epoch records (``epoch``, ``train_loss``, ``val_loss``,
        ``val_perplexity``, ``val_accuracy``), for metrics such as "first epoch at which...".
        Values are numbers, strings or booleans; a key ``samples`` may hold small lists for plots.
        """
        return {}

    def optimum(self, data: TaskData) -> dict[str, float]:
        """Best achievable test figures for this data, where known (e.g. the entropy rate)."""
        return {}

    def baselines(self, data: TaskData) -> list[Baseline]:
        """Trivial predictors' test scores, computed on ``data``."""
        return []

    def encode_prompt(self, text: str) -> list[Any]:
        """Parse a user's prompt for ``harness predict``: token ids or values, space-separated."""
        kind = int if self.shape.input_kind == "tokens" else float
        try:
            values = [kind(part) for part in text.split()]
        except ValueError:
            raise ValueError(
                f"task {self.name!r} expects space-separated {kind.__name__}s, not {text!r}"
            ) from None
        if kind is int and any(not 0 <= v < self.shape.input_size for v in values):
            raise ValueError(f"task {self.name!r} takes token ids 0..{self.shape.input_size - 1}")
        if not values:
            raise ValueError("the prompt is empty")
        return values

    def decode(self, values: list[Any]) -> str:
        """Show generated tokens or values to a person."""
        return " ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values)

    def options(self) -> dict[str, Any]:
        """The task's options (its dataclass fields) as a plain dict."""
        return dataclasses.asdict(self)

    def with_options(self, **options: Any) -> Task:
        """A copy with some options replaced; values given as strings are converted. A value
        the task's own checks refuse is a ``ValueError`` naming the task and the options."""
        subject = f"task {self.name!r}"
        values = converted_options(self, subject, options)
        try:
            return dataclasses.replace(self, **values)
        except (TypeError, ValueError) as exc:  # its __post_init__ refused a value
            given = ", ".join(f"{key}={value!r}" for key, value in values.items())
            label = "option" if len(values) == 1 else "options"
            raise ValueError(f"{subject} {label} {given}: {exc}") from None


def converted_options(owner: Any, subject: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against the dataclass fields of ``owner`` (a task, or a model's
    options), values given as strings converted to each field's type; a ``ValueError`` names
    ``subject`` and the option."""
    known = {f.name: f for f in dataclasses.fields(owner)}
    converted = {}
    for key, value in options.items():
        if key not in known:
            names = ", ".join(known) or "none"
            raise ValueError(f"{subject} has no option {key!r} (options: {names})")
        current = getattr(owner, key)
        if isinstance(value, str) and not isinstance(current, str):
            try:
                value = _convert(value, type(current))
            except ValueError:
                kind = type(current).__name__
                raise ValueError(
                    f"{subject} option {key!r} takes {_article(kind)} {kind}, not {value!r}"
                ) from None
        converted[key] = value
    return converted


def _convert(text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, not {text!r}")
    if kind is type(None):
        return None if text.lower() in ("none", "null") else text
    return kind(text)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def dataclass_problem(cls: type) -> str | None:
    """Why the options of a :class:`Task` subclass would vanish, or ``None``.

    Options are dataclass fields: in a class between ``cls`` and :class:`Task` that is not
    decorated with ``@dataclass``, annotated options and new defaults are plain class
    attributes, so ``-o`` cannot set them and they are left out of ``options()`` and the config
    hash, silently. The plugin manager refuses such a task at registration and the conformance
    kit fails it, both with this message.
    """
    import inspect

    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for klass in cls.__mro__:
        if klass is Task or klass is object:
            break
        if "__dataclass_fields__" in klass.__dict__:  # decorated: its own fields are real
            continue
        hints = inspect.get_annotations(klass)
        options = [n for n, hint in hints.items() if "ClassVar" not in str(hint)]
        options += [n for n in fields if n in klass.__dict__ and n not in options]
        if options:
            return (
                f"{klass.__name__} is not a @dataclass: {', '.join(options)} would be options, "
                "but -o cannot set them and options() leaves them out; decorate it with "
                "@dataclasses.dataclass"
            )
    return None
