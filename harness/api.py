"""The Python API: run a grid and get the per-cell table back as a pandas DataFrame.

    import harness
    cells = harness.run(tasks=["hello"], models=["rnn", "gru"], epochs=5)

The command line is a thin layer over :func:`execute_run`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.errors import HarnessError
from harness.grid.lifecycle import Terminated as Terminated  # re-exported for the CLI
from harness.grid.lifecycle import sigterm_as_interrupt as sigterm_as_interrupt
from harness.plugin_api.manager import Registry
from harness.plugin_api.manager import load_plugins as load_plugins  # for the CLI
from harness.report import LoadedRun, rebuild
from harness.report.ranking import split_unfinished as split_unfinished  # for the CLI
from harness.session import run_session
from harness.settings.config import RunConfig, load_config
from harness.settings.overrides import parse_assignments as parse_assignments  # for the CLI
from harness.settings.overrides import recipe_from_text as recipe_from_text
from harness.settings.sweep import parse_sweep_flags as parse_sweep_flags  # for the CLI
from harness.storage import status as status  # the status vocabulary, for the CLI
from harness.storage.status import BROKEN

if TYPE_CHECKING:
    from harness.report.compare import Comparison


@dataclass
class RunResult:
    """A finished (or interrupted) run: where it lives and its tables."""

    out: Path
    cells: pd.DataFrame
    records: list[dict[str, Any]]
    skipped_plugins: list[str]

    @property
    def failed(self) -> pd.DataFrame:
        return self.cells[self.cells["status"].isin(BROKEN)]


def run(
    config: RunConfig | None = None, *, registry: Registry | None = None, **settings: Any
) -> pd.DataFrame:
    """Run a grid (``settings`` as in :class:`RunConfig`) and return the per-cell table."""
    if config is None:
        config = load_config(None, settings)
    return execute_run(config, registry=registry).cells


def execute_run(
    config: RunConfig,
    *,
    registry: Registry | None = None,
    on_start: Callable[[int, int], None] = lambda total, done: None,
    on_done: Callable[[dict[str, Any]], None] = lambda record: None,
    on_notice: Callable[[str], None] = lambda text: None,
) -> RunResult:
    """Plan, run and report a grid (:func:`harness.session.run_session`). On Ctrl-C the
    finished cells are reported, then it re-raises."""
    session = run_session(
        config, registry=registry, on_start=on_start, on_done=on_done, on_notice=on_notice
    )
    assert session.folder is not None
    cells = pd.read_parquet(session.folder.cells_parquet)
    return RunResult(
        out=session.folder.path,
        cells=cells,
        records=session.records,
        skipped_plugins=session.broken_plugins,
    )


def tune(
    config: RunConfig | None = None, *, registry: Registry | None = None, **settings: Any
) -> pd.DataFrame:
    """Tune every task x model pair (``settings`` as in :class:`RunConfig`, ``trials`` the
    budget per pair), re-run each pair's best configuration on the seeds and return the final
    cells' table; the trials are in ``<run>/trials.csv``. Needs optuna (``harness[tune]``)."""
    from harness.tuning import tune as run_tune

    return run_tune(config, registry=registry, **settings)


def execute_tune(config: RunConfig, **callbacks: Any) -> Any:
    """:func:`tune` with progress callbacks, as the command line runs it (see
    :func:`harness.tuning.execute_tune`); a one-line error when optuna is missing."""
    from harness.tuning import execute_tune as run_tune

    return run_tune(config, **callbacks)


def load_run(run_dir: str | Path) -> LoadedRun:
    """An earlier run folder read back: records, run.json, per-task metadata, leaderboards."""
    return LoadedRun.load(run_dir)


def report(run_dir: str | Path, html_only: bool = False) -> LoadedRun:
    """Rebuild the tables, leaderboard, plots and report.html of a run folder from its cell
    records (``html_only``: only report.html)."""
    return rebuild(run_dir, html_only=html_only)


def compare(
    run_a: str | Path, run_b: str | Path, threshold: float = 0.01, speed_threshold: float = 0.10
) -> Comparison:
    """Run B against run A (the baseline): quality and speed changes, cells added or removed,
    and the regressions (see :mod:`harness.report.compare`)."""
    from harness.report.compare import compare as compare_runs

    for name, value in (("--threshold", threshold), ("--speed-threshold", speed_threshold)):
        if not value >= 0:
            raise HarnessError(f"{name} must be zero or more (a fraction, e.g. 0.05), not {value}")
    a, b = LoadedRun.load(run_a), LoadedRun.load(run_b)
    return compare_runs(a, b, threshold=threshold, speed_threshold=speed_threshold)


def predict(run_dir: str | Path, task: str, model: str, seed: int, prefix: str, steps: int) -> str:
    """Continue ``prefix`` with a model saved by ``run(save_models=True)``."""
    from harness.predict import continue_prompt

    return continue_prompt(Path(run_dir), task, model, seed, prefix, steps)


def plot_benchmarks(json_path: str | Path, out: str | Path) -> list[Path]:
    """PNG plots of a saved pytest-benchmark JSON; returns the files written."""
    from harness.benchplot import plot_benchmarks as plot

    return plot(Path(json_path), Path(out))
