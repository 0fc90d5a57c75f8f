"""`harness tune`: the same trial budget for every task x model, scored on validation only.

Each pair gets its own Optuna study (a seeded TPE sampler) over the search space its task's
recipe declares. Trials are cells: they run on the executors `harness run` uses, each record is
written atomically the moment it finishes, and they never evaluate the test split. The best
configuration of each pair is then re-run on the run's seeds, which no trial trained on, and
only those cells are tested: once each.

A tune's run folder holds what `harness run` writes for the final cells, plus::

    tune/study.db          the Optuna studies (SQLite): a killed tune resumes from them
    tune/cells/<id>.json   one record per trial (`<task>__<model>__trial<n>`)
    trials.csv, .parquet   one row per trial: hyperparameters, validation figures, seconds

Resuming reuses every finished trial: a trial asked but not finished when the tune was killed
is re-run with the parameters the study gave it (or its record is reused if it had been
written), and the sampler is reseeded from the trial number before every ask. A kill between
batches of trials resumes to the suggestions of an uninterrupted tune; a kill inside a batch of
parallel trials can change the later suggestions (TPE sees another history), never the
finished trials.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.grid.cells import Cell
from harness.grid.executors import make_executor
from harness.grid.protocol import Executor
from harness.grid.runner import (
    GridPlan,
    Unit,
    drive,
    failed_record,
    load_record,
)
from harness.plugin_api.task import Choice, Dimension, LogUniform, Recipe
from harness.storage import status
from harness.storage.files import write_frame
from harness.storage.run_folder import RunFolder

#: Trials train on seed ``TRIAL_SEED_OFFSET + --seed``, far from the seeds the final cells use
#: (``--seed`` .. ``--seed + --seeds - 1``), so no final cell shares data or initialization with
#: the trials that chose its configuration.
TRIAL_SEED_OFFSET = 1_000_000
INSTALL_HINT = "harness tune needs optuna: pip install 'harness[tune]'"


def require_optuna() -> None:
    """Raise a one-line :class:`HarnessError` saying how to install optuna when it is missing."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise HarnessError(INSTALL_HINT) from None


@dataclass(frozen=True)
class TrialCell(Cell):
    """A cell that is one trial of a pair's study: its own id, so it never collides with the
    final cells, and the trial number in its config."""

    trial: int = 0

    @property
    def cell_id(self) -> str:
        return f"{self.task}__{self.model}__trial{self.trial}"

    def config(self) -> dict[str, Any]:
        return {**super().config(), "trial": self.trial}


def objective_name(primary_metric: str) -> str:
    """The validation column a trial is scored by: ``test_accuracy`` -> ``val_accuracy``."""
    if primary_metric.startswith("val_"):  # already a validation column (``--objective``)
        return primary_metric
    return "val_" + primary_metric.removeprefix("test_")


def objective_of(meta: Any, objective: str | None) -> tuple[str, bool]:
    """The validation column trials are scored on, and whether higher is better: ``objective``
    (``--objective``) or the validation form of the task's primary metric."""
    if objective is None or objective == objective_name(meta.primary_metric):
        return objective_name(meta.primary_metric), meta.higher_is_better
    if objective == "val_accuracy":
        return objective, True
    if objective in ("val_loss", "val_perplexity"):
        return objective, False
    own = objective.removeprefix("val_task_")
    direction = meta.metric_directions.get(own) if objective.startswith("val_task_") else None
    if direction is None:
        raise HarnessError(
            f"--objective {objective}: not a validation column with a direction (val_loss, "
            "val_perplexity, val_accuracy, or val_task_<own metric with a direction>)"
        )
    return objective, direction == "higher"


def trial_score(record: dict[str, Any], primary_metric: str) -> float | None:
    """A finished trial's validation score, or ``None`` (failed, diverged, not a number)."""
    if record.get("status") != status.OK:
        return None
    value = record.get(objective_name(primary_metric))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def distributions(space: dict[str, Dimension]) -> dict[str, Any]:
    """The search space as Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for name, dimension in space.items():
        if isinstance(dimension, LogUniform):
            out[name] = FloatDistribution(dimension.low, dimension.high, log=True)
        elif isinstance(dimension, Choice):
            out[name] = CategoricalDistribution(dimension.values)
        else:  # pragma: no cover - Recipe refuses anything else
            raise TypeError(f"unknown search dimension {dimension!r}")
    return out


def startup_trials(budget: int) -> int:
    """Trials drawn at random before TPE models the results: a third of the budget, 2 to 10.

    Optuna's default of 10 would leave a budget of 8 entirely random.
    """
    return min(10, max(2, budget // 3))


#: A search dimension named ``model.FIELD`` is the model's option ``FIELD``, not a recipe field.
MODEL_PREFIX = "model."


def apply_params(cell: Cell, params: dict[str, Any]) -> Cell:
    """``cell`` with a trial's parameters: recipe fields into its recipe, ``model.FIELD``
    into its model options."""
    recipe = {k: v for k, v in params.items() if not k.startswith(MODEL_PREFIX)}
    options = {k.removeprefix(MODEL_PREFIX): v for k, v in params.items() if k not in recipe}
    return replace(
        cell,
        recipe=replace(cell.recipe, **recipe),
        model_options={**cell.model_options, **options},
    )


def default_point(
    recipe: Recipe, space: dict[str, Dimension], options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The recipe's own values (and the model's options), when the space contains them: tried
    first, so tuning can only match or beat the task's default on validation."""
    options = options or {}
    point = {
        name: options.get(name.removeprefix(MODEL_PREFIX))
        if name.startswith(MODEL_PREFIX)
        else getattr(recipe, name)
        for name in space
    }
    for name, dimension in space.items():
        value = point[name]
        if isinstance(dimension, LogUniform) and not dimension.low <= value <= dimension.high:
            return None
        if isinstance(dimension, Choice) and value not in dimension.values:
            return None
    return point


class PairStudy:
    """One task x model: its Optuna study, the trials it asks for, and what it is told."""

    def __init__(
        self,
        storage: Any,
        base: Cell,
        space: dict[str, Dimension],
        primary_metric: str,
        higher_is_better: bool,
        budget: int,
        sampler_seed: int,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        import optuna

        self.base, self.space, self.budget = base, space, budget
        self.primary_metric, self.sampler_seed = primary_metric, sampler_seed
        self.distributions = distributions(space)
        self.name = f"{base.task}__{base.model}__{self._digest()}"
        self.study = optuna.create_study(
            storage=storage,
            study_name=self.name,
            direction="maximize" if higher_is_better else "minimize",
            load_if_exists=True,
        )
        if not self.study.get_trials(deepcopy=False):
            point = default_point(base.recipe, space, model_options)
            if point is not None:
                self.study.enqueue_trial(point, skip_if_exists=True)
        self.in_flight: dict[int, TrialCell] = {}
        self.records: dict[int, dict[str, Any]] = {}

    def _digest(self) -> str:
        """The study's name carries a hash of everything its trials depend on, so a tune rerun
        with other settings into the same folder starts a new study instead of mixing them."""
        payload = {
            "base": base_config(self.base),
            "space": {name: asdict(dimension) for name, dimension in self.space.items()},
            "primary_metric": self.primary_metric,
            "sampler_seed": self.sampler_seed,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def trial_cell(self, number: int, params: dict[str, Any]) -> TrialCell:
        cell = apply_params(self.base, params)
        fields = {f: getattr(cell, f) for f in cell.__dataclass_fields__}
        return TrialCell(**{**fields, "trial": number, "evaluate_test": False})

    def unfinished(self) -> list[TrialCell]:
        """Trials a killed tune asked for but never finished: they run again, same parameters."""
        from optuna.trial import TrialState

        cells = []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            cell = self.trial_cell(trial.number, trial.params)
            self.in_flight[trial.number] = cell
            cells.append(cell)
        return cells

    @property
    def finished(self) -> int:
        from optuna.trial import TrialState

        done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=done))

    def ask(self, count: int) -> list[TrialCell]:
        """Up to ``count`` new trials, within the budget. The sampler is reseeded from the trial
        number before each ask, so the suggestions depend only on the study's history."""
        import optuna

        cells = []
        while len(cells) < count and self.finished + len(self.in_flight) < self.budget:
            number = len(self.study.get_trials(deepcopy=False))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.sampler = optuna.samplers.TPESampler(
                    seed=_mix(self.sampler_seed, number),
                    n_startup_trials=startup_trials(self.budget),
                    multivariate=True,
                    constant_liar=True,
                )
            trial = self.study.ask(self.distributions)
            cell = self.trial_cell(trial.number, trial.params)
            self.in_flight[trial.number] = cell
            cells.append(cell)
        return cells

    def tell(self, cell: TrialCell, record: dict[str, Any]) -> None:
        """Report a finished trial to the study: its validation score, or a failure."""
        from optuna.trial import TrialState

        value = trial_score(record, self.primary_metric)
        if value is None:
            self.study.tell(cell.trial, state=TrialState.FAIL, skip_if_finished=True)
        else:
            self.study.tell(cell.trial, value, skip_if_finished=True)
        self.in_flight.pop(cell.trial, None)
        self.records[cell.trial] = record

    def best_params(self) -> dict[str, Any] | None:
        """The best completed trial's parameters, or ``None`` when every trial failed."""
        from optuna.trial import TrialState

        if not self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return None
        return dict(self.study.best_trial.params)

    def best_value(self) -> float | None:
        return self.study.best_value if self.best_params() is not None else None


def base_config(cell: Cell) -> dict[str, Any]:
    return {k: v for k, v in cell.config().items() if k != "seed"}


def _mix(seed: int, number: int) -> int:
    """A sampler seed for trial ``number`` of a study seeded with ``seed``."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class TrialFeed:
    """The studies as a :class:`~harness.grid.runner.Feed`: each pair asks for a batch of
    trials (enough to fill the executor when the pairs are fewer than its slots) and asks
    again once its batch is told, so the executor stays busy while each study still sees its
    earlier results before its next suggestions. A trial whose record is already on disk (a
    resumed tune) is told at once."""

    def __init__(
        self,
        studies: list[PairStudy],
        trial_out: RunFolder,
        batch: int,
        on_done: Callable[[dict[str, Any]], None],
    ) -> None:
        self.trial_out, self.batch, self.on_done = trial_out, batch, on_done
        self.queue: deque[Unit] = deque()
        self.owner: dict[str, PairStudy] = {}
        for study in studies:
            self._feed(study, study.unfinished() or study.ask(batch))

    def _feed(self, study: PairStudy, cells: list[TrialCell]) -> None:
        while cells:
            for cell in cells:
                record = load_record(self.trial_out, cell)
                if record is None:
                    self.owner[cell.cell_id] = study
                    self.queue.append([cell])
                else:
                    study.tell(cell, record)
                    self.on_done(record)
            cells = [] if study.in_flight else study.ask(self.batch)

    def take(self, room: int) -> list[Unit]:
        return [self.queue.popleft() for _ in range(min(room, len(self.queue)))]

    def retry(self, unit: Unit) -> None:
        self.queue.appendleft(unit)

    def done(self, unit: Unit, records: list[dict[str, Any]]) -> None:
        (cell,), (record,) = unit, records
        study = self.owner.pop(cell.cell_id)
        record = dict(record, trial=cell.trial)
        self.trial_out.write_record(record)  # written before the study hears of it: nothing lost
        study.tell(cell, record)
        self.on_done(record)
        if not study.in_flight:
            self._feed(study, study.ask(self.batch))

    def give_up(self, unit: Unit, error: str) -> None:
        self.done(unit, [failed_record(cell, error) for cell in unit])


def run_trials(
    studies: list[PairStudy],
    trial_out: RunFolder,
    start: Callable[[], Executor],
    *,
    registry: Any = None,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Run every study to its budget on executors from ``start`` (the factory `harness run`
    uses, so ``--executor`` and ``--workers`` mean the same here), through the grid's own
    :func:`~harness.grid.runner.drive`: lost trials and broken pools are handled there.
    Each study asks for its share of the executor's capacity (what its workers run at once:
    Ray's nodes' CPUs over a cell's), so it sees results before it suggests more.
    ``on_ready``: called once the executor is up (or nothing is left to run)."""
    if all(study.finished >= study.budget for study in studies):
        on_ready()
        return
    executor = start()
    try:
        on_ready()
        batch = max(1, -(-executor.capacity // max(1, len(studies))))
        feed = TrialFeed(studies, trial_out, batch, on_done)
    except BaseException:
        executor.shutdown(cancel=True)
        raise
    drive(feed, start, registry=registry, executor=executor)


@dataclass
class TuneResult:
    """A finished tune: its run folder, the final cells' records and the trials' records."""

    out: Path
    records: list[dict[str, Any]]
    trials: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failed(self) -> Any:
        """The final cells that failed or diverged (a failed trial is a result of tuning)."""
        import pandas as pd

        rows = [r for r in self.records if r["status"] in status.BROKEN]
        return pd.DataFrame(rows, columns=["task", "model", "seed", "status", "error"])


def tune(config: Any = None, *, registry: Any = None, **settings: Any) -> Any:
    """Tune and re-run a grid (``settings`` as in :class:`~harness.settings.config.RunConfig`, plus
    ``trials``); returns the final cells' table. The trials are in ``<run>/trials.csv``."""
    import pandas as pd

    from harness.settings.config import load_config

    if config is None:
        config = load_config(None, settings)
    result = execute_tune(config, registry=registry)
    if not result.records:  # every trial failed: no final cells, no table written
        return pd.DataFrame()
    return pd.read_parquet(RunFolder(result.out).cells_parquet)


def execute_tune(
    config: Any,
    *,
    registry: Any = None,
    on_start: Callable[[int, int], None] = lambda total, done: None,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    on_notice: Callable[[str], None] = lambda text: None,
) -> TuneResult:
    """Tune every task x model pair of ``config`` (a :class:`~harness.settings.config.RunConfig`),
    then re-run each pair's best configuration on the run's seeds and report the test figures.

    The session pipeline (:class:`~harness.session.Session`) does the planning, the folder and
    run.json's life, the cells and the report; this adds only the studies that ask and tell."""
    require_optuna()
    import optuna

    from harness.report.tables import cells_frame, typed_per_task
    from harness.session import Session

    trial_seed = TRIAL_SEED_OFFSET + config.seed
    if trial_seed in config.seed_list:
        raise HarnessError(f"seeds reach the trial seed {trial_seed}: use fewer or lower seeds")
    session = Session.plan(config, registry=registry, command="tune", plan_seeds=[trial_seed])
    session.on_notice = on_notice  # a tracker's warning (--log)
    bases = session.grid.cells  # each applicable pair once, on the trial seed
    not_applicable = [
        (replace(cell, seed=seed), reason)
        for cell, reason in session.grid.not_applicable
        for seed in session.seeds
    ]
    failed = [  # a task plugin that failed at planning: its cells fail, with why
        (replace(cell, seed=seed), error)
        for cell, error in session.grid.failed
        for seed in session.seeds
    ]
    try:
        for cell in bases:
            model = spaces_model(session, cell)
            check_space(cell.recipe, search_space(cell.recipe, config, model), model)
    except ValueError as exc:  # a search space that makes no recipe
        raise HarnessError(str(exc)) from None
    seeds, metas = session.seeds, session.metas
    objectives = {name: objective_of(meta, config.objective) for name, meta in metas.items()}
    trial_records: list[dict[str, Any]] = []
    summary: dict[str, dict[str, Any]] = {}
    with session.open(resolved={"trial_seed": trial_seed}) as live:
        folder = live.folder
        assert folder is not None
        trial_out = folder.trials
        folder.study_db.parent.mkdir(exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{folder.study_db.resolve()}")
        studies = [
            PairStudy(
                storage,
                base,
                search_space(base.recipe, config, spaces_model(session, base)),
                *objectives[base.task],
                config.trials,
                config.seed,
                spaces_model(session, base).option_values(),
            )
            for base in bases
        ]
        live.info["tune"] = {
            "trials": config.trials,
            "trial_seed": trial_seed,
            "final_seeds": seeds,
            "storage": "tune/study.db",
            "sampler": f"TPE (multivariate, {startup_trials(config.trials)} random startup "
            "trials, reseeded from the trial number)",
            "studies": {s.name: _space_text(s.space) for s in studies},
        }
        live.write_info()
        trial_total = len(studies) * config.trials
        total = trial_total + len(studies) * len(seeds)
        run_trials(
            studies,
            trial_out,
            lambda: make_executor(
                config.executor,
                workers=min(config.worker_count, os.cpu_count() or 1),
                threads=config.threads,
                ray_address=config.ray_address,
                gpus_per_cell=config.gpus_per_cell,
            ),
            registry=session.registry,
            on_done=on_done,
            on_ready=lambda: on_start(total, sum(min(s.finished, config.trials) for s in studies)),
        )
        trial_records = _trial_records(trial_out, studies)
        trials = cells_frame(trial_records)
        if "trial" in trials:  # beside the model, before the seed
            trials.insert(3, "trial", trials.pop("trial"))
        write_frame(typed_per_task(trials), folder.trials_table)
        summary = _summaries(studies, trial_records)
        final = GridPlan(not_applicable=not_applicable, failed=failed)
        for study in studies:
            params = study.best_params()
            if params is None:
                on_notice(f"{study.base.task} x {study.base.model}: every trial failed")
                continue
            tuned = apply_params(study.base, params)
            for seed in seeds:
                final.cells.append(replace(tuned, seed=seed))
        for task in session.tasks:
            recipes = {pair["model"]: pair for pair in summary.values() if pair["task"] == task}
            metas[task] = replace(metas[task], recipes=recipes)
        records = live.run_cells(
            final,
            on_start=lambda _, done: on_start(total, trial_total + done),
            on_done=on_done,
            on_notice=on_notice,
        )
        for pair in summary.values():
            finals = [
                r for r in records if (r["task"], r["model"]) == (pair["task"], pair["model"])
            ]
            pair["final_seeds"] = sorted(r["seed"] for r in finals)
            pair["test_evaluations"] = pair["trial_test_evaluations"] + sum(
                _test_evaluations(r) for r in finals
            )
        live.info["tune"]["pairs"] = summary
    return TuneResult(
        out=folder.path, records=session.records, trials=trial_records, summary=summary
    )


def spaces_model(session: Any, cell: Cell) -> Any:
    """The pair's model with the options the run set (its search space and defaults)."""
    return session.registry.models[cell.model].with_options(**cell.model_options)


def search_space(recipe: Recipe, config: Any, model: Any = None) -> dict[str, Dimension]:
    """The recipe's search space, and the model's declared option space as ``model.FIELD``;
    without the hidden size when ``--params`` fixes it."""
    space = recipe.search_space()
    if getattr(config, "params", None) is not None:
        space.pop("hidden_size", None)
    for name, dimension in dict(getattr(model, "search", None) or {}).items():
        space[MODEL_PREFIX + name] = dimension
    return space


def check_space(recipe: Recipe, space: dict[str, Dimension], model: Any = None) -> None:
    """Every value the space can give must make a valid recipe or model option (``ValueError``
    otherwise)."""
    for name, dimension in space.items():
        values = (
            (dimension.low, dimension.high)
            if isinstance(dimension, LogUniform)
            else dimension.values
        )
        for value in values:
            try:
                if name.startswith(MODEL_PREFIX):
                    model.with_options(**{name.removeprefix(MODEL_PREFIX): value})
                else:
                    replace(recipe, **{name: value})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"search space: {name}={value!r} makes no recipe: {exc}") from None


def _space_text(space: dict[str, Dimension]) -> dict[str, str]:
    return {
        name: f"log-uniform [{d.low:g}, {d.high:g}]"
        if isinstance(d, LogUniform)
        else "one of " + ", ".join(map(str, d.values))
        for name, d in space.items()
    }


def _trial_records(trial_out: RunFolder, studies: list[PairStudy]) -> list[dict[str, Any]]:
    """Every finished trial's record, this session's and those of the runs it resumed."""
    from optuna.trial import TrialState

    records = []
    for study in studies:
        done = (TrialState.COMPLETE, TrialState.FAIL)
        for trial in study.study.get_trials(deepcopy=False, states=done):
            record = study.records.get(trial.number)
            if record is None:
                record = load_record(trial_out, study.trial_cell(trial.number, trial.params))
            if record is not None:
                records.append(record)
    return records


def _test_evaluations(record: dict[str, Any]) -> int:
    """How often a cell looked at the test split: its own count, else 1 if it has test figures."""
    if "test_evaluations" in record:
        return int(record["test_evaluations"] or 0)
    return int(any(k.startswith("test_") and record[k] is not None for k in record))


def _summaries(
    studies: list[PairStudy], trial_records: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per pair: where its recipe came from, for run.json and the leaderboard."""
    summary = {}
    for study in studies:
        mine = [
            r
            for r in trial_records
            if (r["task"], r["model"]) == (study.base.task, study.base.model)
        ]
        summary[f"{study.base.task}__{study.base.model}"] = {
            "task": study.base.task,
            "model": study.base.model,
            "origin": "tuned",
            "study": study.name,
            "trials": len(mine),
            "failed_trials": sum(trial_score(r, study.primary_metric) is None for r in mine),
            "trial_seed": study.base.seed,
            "device_seconds": sum(float(r.get("wall_seconds") or 0.0) for r in mine),
            "objective": objective_name(study.primary_metric),
            "best_validation": study.best_value(),
            "params": study.best_params(),
            "trial_test_evaluations": sum(_test_evaluations(r) for r in mine),
        }
    return summary
