"""One training step and one inference step for every installed task x model pair.

The pair and its two step functions come from :func:`harness.training.timing.pair_steps`, the
very ones the timing phase of ``harness run`` times: one batch of the task's recipe batch size from
``task.make_data(0)``, built before the clock starts. Benchmarks are grouped per task and phase,
so the models of a task sit side by side in one table.
"""

from __future__ import annotations

from benchmarks.support import measure
from harness.training.timing import pair_steps


def _bench(benchmark, registry, task_name, model_name, task_data, device, rounds, phase):
    task, model = registry.tasks[task_name], registry.models[model_name]
    steps = pair_steps(task, model, task.recipe, device, task_data(task))
    info = {"kind": "pair", "phase": phase, **steps.info, "task_options": task.options()}
    benchmark.group = f"{task.name} {phase}"
    measure(
        benchmark,
        steps.train if phase == "train" else steps.infer,
        device,
        rounds=rounds,
        items=steps.items,
        unit=steps.unit,
        info=info,
    )


def test_train_step(benchmark, registry, task_name, model_name, task_data, device, rounds):
    """Forward, backward, clip and optimizer step: exactly the step the training loop runs."""
    _bench(benchmark, registry, task_name, model_name, task_data, device, rounds, "train")


def test_infer_step(benchmark, registry, task_name, model_name, task_data, device, rounds):
    """Forward only, under no_grad, from a fresh state: what scoring and generation pay."""
    _bench(benchmark, registry, task_name, model_name, task_data, device, rounds, "infer")
