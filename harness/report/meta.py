"""What the report knows of a task: how it ranks, its references, recipe and options.

Built once per run from the task plugin (see ``harness.session.task_meta``), stored in run.json,
and read back by ``harness report`` and ``harness compare`` without loading any plugin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Reference:
    """A row for comparison beside the models: a trivial baseline, mean over seeds."""

    name: str
    description: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskMeta:
    """A task as the report shows it; ``optimum`` holds the best achievable figures."""

    primary_metric: str
    higher_is_better: bool
    description: str = ""
    input_kind: str = ""
    metric_descriptions: dict[str, str] = field(default_factory=dict)
    metric_directions: dict[str, str] = field(default_factory=dict)
    scored_steps: int | None = None
    validation: str = ""  # where the validation split comes from (the task's own, or carved)
    params_target: int | None = None  # with --params: the parameter count models were sized to
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> hidden_size, params
    options: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""
    optimum: dict[str, float] = field(default_factory=dict)
    baselines: list[Reference] = field(default_factory=list)
    #: model -> where its recipe came from, for models `harness tune` tuned (trials,
    #: device-seconds, the chosen hyperparameters); a model not here ran the task's default.
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: why the task's references could not be computed (its make_data, optimum or baselines
    #: raised): its cells fail with the plugin's error, every other task runs
    error: str = ""

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def references(self) -> list[tuple[str, dict[str, float]]]:
        """Baselines then the best achievable, as (row label, metrics)."""
        rows = [(f"({b.name})", b.metrics) for b in self.baselines]
        if self.optimum:
            rows.append(("(best achievable)", self.optimum))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskMeta:
        """Read run.json's entry; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        names = {f.name for f in fields(Reference)}
        values["baselines"] = [
            b if isinstance(b, Reference) else Reference(**{k: b[k] for k in b if k in names})
            for b in values.get("baselines") or []
        ]
        return cls(**values)


def read_metas(info: dict[str, Any]) -> dict[str, TaskMeta]:
    """The tasks of a run.json, in run order."""
    return {name: TaskMeta.from_dict(meta) for name, meta in info.get("tasks", {}).items()}
