"""``check_model``: does a model keep the module contract the shared loops rely on?

One training loop, one scoring function and one generation loop serve every model, so each
built network must map (batch, time, ...) inputs and an optional state to (batch, time, output)
outputs and a state that, carried into the next call, continues the sequence exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.plugin_api.model import Model
from harness.plugin_api.task import INPUT_KINDS, Recipe, TaskShape
from harness.testing.common import check_name, check_text, fail, one_thread
from harness.training.contract import output_problem, state_problem

#: Task shapes a model is built for, per input kind: both output kinds for each.
SHAPES = {
    "tokens": (TaskShape("tokens", 5, "classes", 5), TaskShape("tokens", 5, "values", 2)),
    "values": (TaskShape("values", 3, "values", 2), TaskShape("values", 3, "classes", 4)),
}


def check_model(
    model: Model,
    *,
    hidden_size: int = 8,
    layers: Sequence[int] = (1, 2),
    batch: int = 3,
    steps: int = 9,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Check a model for every input kind it claims; raise AssertionError if broken.

    For each kind, both output kinds and each layer count: output and state shapes, that the
    state carried across a split equals one whole pass (within ``rtol``/``atol``), that
    sequences in a batch do not see each other, and that a few training steps through
    :func:`harness.training.train.make_training_step` give a finite loss and move every parameter.
    A model that claims ``trains_across_seeds`` is also checked with
    :func:`check_trains_across_seeds`.
    """
    subject = f"model {getattr(model, 'name', model)!r}"
    if not isinstance(model, Model):
        fail(subject, f"{type(model).__name__} is not a harness.Model")
    check_name(subject, model.name)
    check_text(subject, "description", model.description)
    if not model.input_kinds:
        fail(subject, "input_kinds is empty: the model serves no task")
    for kind in INPUT_KINDS:
        for shape in SHAPES[kind]:
            reason = model.cannot_serve(shape)
            if kind in model.input_kinds and reason is not None:
                fail(subject, f"claims {kind} inputs but cannot_serve({shape}) says {reason!r}")
            if kind not in model.input_kinds and not (isinstance(reason, str) and reason):
                fail(subject, f"does not claim {kind} inputs, so cannot_serve must give a reason")
    with one_thread():
        for kind in sorted(model.input_kinds):
            for shape in SHAPES[kind]:
                for n in layers:
                    where = f"{subject} ({shape.input_kind} -> {shape.output_kind}, {n} layer(s))"
                    check_network(model, shape, hidden_size, n, batch, steps, rtol, atol, where)
    if model.trains_across_seeds:
        check_trains_across_seeds(model, hidden_size=hidden_size, rtol=rtol, atol=atol)


def example_batch(shape: TaskShape, batch: int, steps: int, seed: int = 0) -> tuple[Any, Any]:
    """Random inputs and targets of the right kinds for ``shape``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if shape.input_kind == "tokens":
        x = torch.randint(0, shape.input_size, (batch, steps), generator=g)
    else:
        x = torch.randn(batch, steps, shape.input_size, generator=g)
    if shape.output_kind == "classes":
        y = torch.randint(0, shape.output_size, (batch, steps), generator=g)
    else:
        y = torch.randn(batch, steps, shape.output_size, generator=g)
    return x, y


def check_network(
    model: Model,
    shape: TaskShape,
    hidden_size: int,
    num_layers: int,
    batch: int,
    steps: int,
    rtol: float,
    atol: float,
    where: str,
) -> None:
    import torch

    from harness.training.state import detach_state
    from harness.training.train import make_training_step

    torch.manual_seed(0)
    net = model.make(shape, hidden_size, num_layers)
    if not isinstance(net, torch.nn.Module):
        fail(where, f"build returned a {type(net).__name__}, not a torch.nn.Module")
    if not any(p.requires_grad for p in net.parameters()):
        fail(where, "the network has no trainable parameters")
    x, y = example_batch(shape, batch, steps)

    def close(actual: Any, expected: Any, what: str) -> None:
        try:
            torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
        except AssertionError as exc:
            fail(where, f"{what}: {str(exc).splitlines()[0]} ({str(exc).splitlines()[-1].strip()})")

    net.eval()
    with torch.no_grad():
        result = net(x, None)
        problem = output_problem(shape, result, batch, steps)
        out, state = result if problem is None else (None, None)
        problem = problem or state_problem(state)
        if problem:
            fail(where, problem)
        if not torch.isfinite(out).all():
            fail(where, "outputs must be finite floats")
        close(net(x)[0], out, "net(x) differs from net(x, None): state must default to None")
        for split in sorted({1, steps // 2, steps - 1}):
            first, carried = net(x[:, :split], None)
            second, _ = net(x[:, split:], carried)
            close(
                torch.cat([first, second], dim=1),
                out,
                f"steps 0..{split - 1} then {split}..{steps - 1} with the state carried differ "
                "from the whole sequence in one call",
            )
        alone, _ = net(x[1:2], None)
        close(alone, out[1:2], "a sequence's outputs change with the other sequences in its batch")

    net.train()
    recipe = Recipe(epochs=1, batch_size=batch, lr=0.01, optimizer="adam", clip=1.0)
    step = make_training_step(net, recipe, shape.output_kind)
    before = {name: p.detach().clone() for name, p in net.named_parameters() if p.requires_grad}
    loss, carried = step(x, y, None)
    losses = [loss, step(x, y, detach_state(carried))[0], step(x, y, None)[0]]
    if not all(torch.isfinite(value) for value in losses):
        fail(where, f"training losses are not finite: {[float(v) for v in losses]}")
    frozen = [n for n, p in net.named_parameters() if n in before and p.grad is None]
    if frozen:
        fail(where, f"no gradient reaches {', '.join(frozen)}: is every parameter used in forward?")
    still = [n for n, p in net.named_parameters() if n in before and torch.equal(p, before[n])]
    if len(still) == len(before):
        fail(where, "three training steps changed no parameter")


def check_trains_across_seeds(
    model: Model,
    *,
    hidden_size: int = 8,
    seeds: Sequence[int] = (0, 1, 2),
    batch: int = 3,
    steps: int = 7,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    update_atol: float = 1e-3,
) -> None:
    """For a model that claims ``trains_across_seeds``: training its seeds together (one
    batched torch.func computation) gives each seed the losses of training it alone, and the
    same parameter updates, for every input and output kind it serves, with clipping and Adam
    in play.

    Updates are compared in units of the learning rate (``(after - before) / lr`` within
    ``update_atol``), not as raw weights: Adam divides a gradient by its own running size, so a
    parameter whose gradient is float noise (an attention key bias, about 1e-9) moves by an
    amount that rounding decides, while it moves at most about one ``lr`` per step either way."""
    import torch

    from harness.training.seeds import SeedStack
    from harness.training.train import make_training_step

    subject = f"model {model.name!r} (trains_across_seeds)"
    recipe = Recipe(epochs=1, batch_size=batch, lr=0.01, optimizer="adam", clip=0.5)
    with one_thread():
        for kind in sorted(model.input_kinds):
            for shape in SHAPES[kind]:
                where = f"{subject} ({shape.input_kind} -> {shape.output_kind})"
                apart, together = [], []
                for seed in seeds:
                    torch.manual_seed(seed)
                    apart.append(model.make(shape, hidden_size, 1))
                    torch.manual_seed(seed)
                    together.append(model.make(shape, hidden_size, 1))
                initial = [
                    {k: v.detach().clone() for k, v in net.state_dict().items()} for net in apart
                ]
                batches = [
                    [example_batch(shape, batch, steps, seed=10 * s + i) for s in seeds]
                    for i in range(3)
                ]
                try:
                    stack = SeedStack(together, recipe, shape.output_kind)
                    losses = [
                        stack.step(
                            torch.stack([x for x, _ in per_seed]),
                            torch.stack([y for _, y in per_seed]),
                        )
                        for per_seed in batches
                    ]
                    stack.unstack()
                except Exception as exc:
                    fail(where, f"training seeds together raised {type(exc).__name__}: {exc}")
                for s, net in enumerate(apart):
                    step = make_training_step(net.train(), recipe, shape.output_kind)
                    for i, per_seed in enumerate(batches):
                        loss, _ = step(*per_seed[s], None)
                        try:
                            torch.testing.assert_close(losses[i][s], loss, rtol=rtol, atol=atol)
                        except AssertionError:
                            fail(
                                where,
                                f"seed {seeds[s]}, step {i}: loss {float(losses[i][s])}"
                                f" together, {float(loss)} apart",
                            )
                    for (name, expected), actual in zip(
                        net.state_dict().items(), together[s].state_dict().values()
                    ):
                        if not expected.is_floating_point():
                            continue
                        before = initial[s][name]
                        moved_apart = (expected - before) / recipe.lr
                        moved_together = (actual - before) / recipe.lr
                        try:
                            torch.testing.assert_close(
                                moved_together, moved_apart, rtol=0, atol=update_atol
                            )
                        except AssertionError as exc:
                            fail(
                                where,
                                f"seed {seeds[s]}: {name}'s update over 3 steps (in units of "
                                f"lr) differs from training it alone "
                                f"({str(exc).splitlines()[-1].strip()})",
                            )
