"""`harness run | list | report | compare | predict | bench-plot`: a thin layer over the API.

Only click is imported at start-up, so `harness --help` answers without importing torch.
Bad input is one line on stderr and exit status 2; a run with failed cells exits 1.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from harness import Recipe  # light: dataclasses only, no torch

EXIT_FAILED_CELLS, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a HarnessError into `error: ...` and exit status 2, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from harness import HarnessError

        try:
            return command(*args, **kwargs)
        except HarnessError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


#: click 8.2+ raises this for a bare `harness`; it carries the help text, not an error.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _OneLineErrors(click.Group):
    """click, but a usage error is one line (``error: ...``, exit 2) like every other bad
    input, instead of click's usage block and hint."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _NO_ARGS_IS_HELP as exc:  # `harness` alone: the help text, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harness")
def main() -> None:
    """Benchmark every task x model pair of sequence models; tasks and models are plugins."""


def _parse_options(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    from harness import HarnessError

    options: dict[str, dict[str, str]] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        task, dot, name = key.partition(".")
        if not sep or not dot or not task or not name:
            raise HarnessError(f"--option takes NAME.FIELD=VALUE, not {value!r}")
        options.setdefault(task, {})[name] = setting
    return options


@main.command()
@click.option("-t", "--task", "tasks", multiple=True, help="Task to run (repeat; default: all).")
@click.option("-m", "--model", "models", multiple=True, help="Model to run (repeat; default: all).")
@click.option(
    "--device",
    default=None,
    help="auto, cpu, cuda, cuda:N or mps (default: auto, which picks cuda, then mps, then cpu).",
)
@click.option("--seed", type=int, default=None, help="First seed (default 0).")
@click.option("--seeds", type=int, default=None, help="Number of seeds per cell (default 1).")
@click.option("--epochs", type=int, default=None, help="Override every task's epochs.")
@click.option("--hidden-size", type=int, default=None, help="Override every task's hidden size.")
@click.option("--lr", type=float, default=None, help="Override every task's learning rate.")
@click.option(
    "-r",
    "--recipe",
    "recipe",
    multiple=True,
    metavar="FIELD=VALUE",
    help=f"Override any recipe field for every task, e.g. batch_size=32, clip=none (repeat). "
    f"Fields: {', '.join(f.name for f in dataclasses.fields(Recipe) if f.name != 'search')}.",
)
@click.option(
    "--params",
    type=int,
    default=None,
    help="Give each model the hidden size whose parameter count is closest to N.",
)
@click.option(
    "--select",
    type=click.Choice(["best", "last"]),
    default=None,
    help="Report the epoch best on validation (default), or the last one.",
)
@click.option(
    "--patience",
    type=int,
    default=None,
    help="Stop a cell after N epochs without a better validation figure (default: never).",
)
@click.option(
    "--until",
    "until",
    multiple=True,
    metavar="[TASK=]VALUE",
    help="Stop a cell once its validation primary metric reaches VALUE: a bare VALUE for every "
    "task ranked higher-is-better (e.g. 0.99 accuracy), TASK=VALUE for one task in its "
    "metric's direction (e.g. adding=0.001). Repeat.",
)
@click.option(
    "--suite",
    "suite",
    multiple=True,
    metavar="TAG",
    help="Run the tasks tagged TAG, e.g. memory (repeat; with -t: both; see `harness list`).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Cells run in N processes (default: one per CPU core).",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="torch threads per worker (default: the cores split between the workers).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "pool", "ray"]),
    default=None,
    help="Where cells run: local (this process), pool (processes; default), ray (Ray tasks).",
)
@click.option(
    "--ray-address",
    default=None,
    help="Join this Ray cluster, within 15 s (default: $RAY_ADDRESS, else start a local Ray "
    "instance).",
)
@click.option(
    "--gpus-per-cell",
    type=float,
    default=None,
    help="With --executor ray: GPU share per cell, e.g. 0.25 packs 4 cells on a GPU.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder (default results/<timestamp>); an existing one is resumed.",
)
@click.option(
    "--resume",
    is_flag=True,
    default=None,
    help="Resume the latest run in results/ (with --out: that folder, which must hold a run).",
)
@click.option(
    "--save-models", is_flag=True, default=None, help="Keep each trained model's weights."
)
@click.option(
    "--timing/--no-timing",
    default=None,
    help="Time each task x model pair's training, inference and generation steps on their "
    "own, before the cells run, rounds interleaved across a task's pairs: the speed figures "
    "(default: on).",
)
@click.option(
    "--sweep",
    "sweep",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Run every combination of these values as a variant: a task or model option "
    "(mqar.length=64,128), a recipe field (hidden_size=32,64) or params (repeat).",
)
@click.option(
    "--speed-reference",
    metavar="MODEL",
    default=None,
    help="Also give each pair's speed relative to this model on the same task, timed side by "
    "side (default: rnn where the task has it).",
)
@click.option(
    "--seeds-together/--seeds-apart",
    default=None,
    help="Train a pair's seeds in one batched computation where its model can "
    "(torch.func; figures equal within float rounding; default: apart, which measured "
    "as fast on CPU).",
)
@click.option(
    "--log",
    "log",
    multiple=True,
    metavar="LOGGER",
    help="Also log each cell to a tracker: tensorboard, mlflow, or a plugin's (repeat; "
    "see `harness list`).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the loggers keep their files, as DIR/<run>/<logger>/ (default <run>/logs/).",
)
@click.option(
    "-o",
    "--option",
    "task_options",
    multiple=True,
    metavar="NAME.FIELD=VALUE",
    help="Set a task's or a model's option, e.g. consecutive.window=30, "
    "transformer.heads=2 (repeat).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML settings file (default: [tool.harness] in ./pyproject.toml).",
)
@_friendly
def run(config_file: str | None, task_options: tuple[str, ...], **flags: Any) -> None:
    """Train every task x model x seed cell and print the leaderboard."""
    _run(_config(config_file, task_options, flags))


def _config(config_file: str | None, task_options: tuple[str, ...], flags: dict[str, Any]) -> Any:
    from harness.api import load_config, parse_assignments, recipe_from_text

    flags["tasks"] = list(flags["tasks"]) or None
    flags["models"] = list(flags["models"]) or None
    flags["suite"] = list(flags.get("suite") or ()) or None
    flags["log"] = list(flags.get("log") or ()) or None
    flags["until"], flags["until_task"] = _parse_until(flags.get("until") or ())
    flags["recipe"] = recipe_from_text(parse_assignments(flags["recipe"], "--recipe")) or None
    if "sweep" in flags:
        from harness.api import parse_sweep_flags

        flags["sweep"] = parse_sweep_flags(flags["sweep"] or ()) or None
    config = load_config(Path(config_file) if config_file else None, flags)
    if task_options:
        for task, values in _parse_options(task_options).items():
            config.options.setdefault(task, {}).update(values)
    return config


@_friendly
def _tune(config_file: str | None, task_options: tuple[str, ...], **flags: Any) -> None:
    """Tune every task x model pair with the same number of Optuna trials, scored on
    validation only; then re-run each pair's best configuration on the seeds and test it once.

    Trials train on their own seed, never one of --seeds. A run folder given with --out (or
    --resume) continues where a killed tune stopped.
    """
    from harness.api import execute_tune

    _run(_config(config_file, task_options, flags), execute=execute_tune)


tune = click.Command(
    "tune",
    callback=_tune,
    params=[
        click.Option(
            ["--trials"],
            type=int,
            default=None,
            help="Optuna trials per task x model (default 20), on the validation split.",
        ),
        click.Option(
            ["--objective"],
            default=None,
            metavar="COLUMN",
            help="Score trials on this validation column (default: the validation form of the "
            "task's primary metric, e.g. val_accuracy), e.g. val_loss or val_task_solved.",
        ),
        *run.params,
    ],
    help=_tune.__doc__,
    context_settings={"help_option_names": ["-h", "--help"]},
)
main.add_command(tune)


def _run(config: Any, execute: Callable[..., Any] | None = None) -> None:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from harness.api import Terminated, execute_run, load_plugins, sigterm_as_interrupt, status

    execute = execute or execute_run

    console = _console()
    registry = load_plugins()
    for broken in registry.broken:
        console.print(
            f"[yellow]skipped broken plugin {escape(f'{broken.origin}: {broken.error}')}[/]"
        )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bar = progress.add_task("cells", total=None)

    started: list[bool] = []

    def on_start(total: int, done: int) -> None:
        progress.update(bar, total=total, completed=done)
        if done and not started:  # `harness tune` calls again before its final cells
            console.print(f"resuming: {done} of {total} cells already finished")
        started.append(True)

    def on_done(record: dict[str, Any]) -> None:
        if record["status"] == status.NOT_APPLICABLE:
            return
        which = f"trial {record['trial']}" if "trial" in record else f"seed {record['seed']}"
        label = f"{record['task']} × {record['model']} ({which})"
        if record["status"] != "ok":
            console.print(f"[red]{record['status']}[/] {label}: {escape(record.get('error', ''))}")
        progress.update(bar, advance=1, description=label)

    def on_start_shown(total: int, done: int) -> None:
        progress.start()  # only once input is checked: a bad flag is one line, no empty bar
        on_start(total, done)

    try:
        with sigterm_as_interrupt():  # a `kill` stops the run as Ctrl-C does, nothing lost
            try:
                result = execute(
                    config,
                    registry=registry,
                    on_start=on_start_shown,
                    on_done=on_done,
                    on_notice=lambda text: console.print(
                        f"[yellow]{escape(text)}[/]", soft_wrap=True
                    ),
                )
            finally:
                if progress.live.is_started:
                    progress.stop()
    except KeyboardInterrupt as exc:
        console.print(
            "[yellow]interrupted[/]: finished cells are saved; run the same command with "
            "--out <run folder> (or --resume) to run only the missing ones"
        )
        sys.exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
    run = _print_leaderboard(console, result.out)
    console.print(
        f"results: {result.out}/ (report.html, leaderboard.md, cells.csv, curves.csv, plots/)"
    )
    for name, logged in run.info.get("loggers", {}).items():
        if logged.get("target") and not logged.get("error"):
            console.print(Text(f"{name}: {logged['target']}"))
    failed = result.failed
    if not failed.empty:
        names = ", ".join(f"{r.task}×{r.model}#{r.seed} ({r.status})" for r in failed.itertuples())
        console.print(f"[red]{len(failed)} cell(s) did not finish: {names}[/]")
        sys.exit(EXIT_FAILED_CELLS)


def _print_leaderboard(console: Any, out: Path) -> Any:
    """Print the run's leaderboards and unfinished cells; the run as loaded."""
    from rich.table import Table
    from rich.text import Text

    from harness.api import load_run, split_unfinished

    run = load_run(out)
    verdicts = {v.task: v for v in run.verdicts()}
    for board in run.leaderboards():
        shown = board.table(compact=True)
        table = Table(title=Text(board.title), caption=board.caption)
        for column in shown.columns:
            # names never fold; the figures' columns give way first
            table.add_column(column, overflow="fold", no_wrap=column in ("rank", "model"))
        for row in shown.itertuples(index=False):
            table.add_row(*(Text(str(value)) for value in row))
        console.print(table)
        console.print(Text(verdicts.pop(board.name).text))
    for left in verdicts.values():  # tasks without a leaderboard: every cell broke
        console.print(Text(left.text))
    broken, skipped = split_unfinished(run.cells)
    for row in [*broken.itertuples(), *skipped.itertuples()]:  # failures first, then n/a
        console.print(
            Text(f"{row.task} × {row.model} (seed {row.seed}): {row.status} - {row.error}")
        )
    return run


@main.command("list")
@click.option(
    "-v", "--verbose", is_flag=True, help="Also each task's and model's options with defaults."
)
@_friendly
def list_plugins(verbose: bool) -> None:
    """Show every task and model, its input kind, tags, and the package it came from."""
    from rich.table import Table
    from rich.text import Text

    from harness import api

    registry = api.load_plugins()
    console = _console()
    tasks = Table(title="tasks")
    columns = ("name", "input", "output", "primary metric", "tags", "default grid", "package")
    for column in columns:
        tasks.add_column(column, no_wrap=True)
    tasks.add_column("description", overflow="fold", min_width=20)
    for name, task in sorted(registry.tasks.items()):
        shape = task.shape
        tasks.add_row(
            *map(
                Text,
                (
                    name,
                    f"{shape.input_kind} ({shape.input_size})",
                    f"{shape.output_kind} ({shape.output_size})",
                    task.primary_metric,
                    ", ".join(task.tags),
                    "yes" if task.in_default_grid else "no (-t or --suite)",
                    _package(registry.origin("task", name)),
                    task.description + (_options_text(task.options()) if verbose else ""),
                ),
            )
        )
    models = Table(title="models")
    for column in ("name", "inputs", "package"):
        models.add_column(column, no_wrap=True)
    models.add_column("description", overflow="fold", min_width=20)
    for name, model in sorted(registry.models.items()):
        models.add_row(
            *map(
                Text,
                (
                    name,
                    ", ".join(sorted(model.input_kinds)),
                    _package(registry.origin("model", name)),
                    model.description + (_options_text(model.option_values()) if verbose else ""),
                ),
            )
        )
    console.print(tasks)
    console.print(models)
    if registry.loggers:
        loggers = Table(title="loggers (--log NAME)")
        for column in ("name", "package"):
            loggers.add_column(column, no_wrap=True)
        loggers.add_column("description", overflow="fold", min_width=20)
        for name, logger in sorted(registry.loggers.items()):
            origin = _package(registry.origin("logger", name))
            loggers.add_row(*map(Text, (name, origin, logger.description)))
        console.print(loggers)
    if registry.unavailable:
        missing = Table(title="unavailable (an optional package is not installed)")
        for column in ("offers", "needs", "install with"):
            missing.add_column(column, overflow="fold")
        for item in registry.unavailable:
            offers = ", ".join(item.offers) or item.origin.plugin
            missing.add_row(*map(Text, (offers, ", ".join(item.missing), item.install)))
        console.print(missing)
    if registry.broken:
        broken = Table(title="broken plugins (skipped)")
        for column in ("plugin", "package", "error"):
            broken.add_column(column, overflow="fold")
        for item in registry.broken:
            broken.add_row(*map(Text, (item.origin.plugin, _package(item.origin), item.error)))
        console.print(broken)


def _console(stderr: bool = False) -> Any:
    """A rich console; when output is not a terminal (a log, CI), 140 columns instead of 80."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(width=140, stderr=stderr)


def _parse_until(values: tuple[str, ...]) -> tuple[float | None, dict[str, float] | None]:
    """``--until 0.99 --until adding=0.001`` as (every higher-is-better task, per task)."""
    from harness import HarnessError

    every, per_task = None, {}
    for value in values:
        task, sep, number = value.rpartition("=")
        try:
            parsed = float(number)
        except ValueError:
            raise HarnessError(f"--until takes VALUE or TASK=VALUE, not {value!r}") from None
        if sep and not task:
            raise HarnessError(f"--until takes VALUE or TASK=VALUE, not {value!r}")
        if sep:
            per_task[task] = parsed
        else:
            every = parsed
    return every, per_task or None


def _options_text(options: dict[str, Any]) -> str:
    """``; options: a=1, b='x'`` for ``harness list --verbose``."""
    if not options:
        return "; no options"
    return "; options: " + ", ".join(f"{key}={value!r}" for key, value in options.items())


def _package(origin: Any) -> str:
    return f"{origin.package} {origin.version}".strip()


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--html", "html_only", is_flag=True, help="Only (re)write report.html; print its path."
)
@_friendly
def report(run_dir: str, html_only: bool) -> None:
    """Rebuild the tables, leaderboard, plots and report.html of a run folder."""
    from rich.markup import escape

    from harness.api import report as rebuild

    run = rebuild(run_dir, html_only=html_only)
    console = _console()
    if run.bad_files:  # on stderr with --html, whose stdout is the report's path
        names = escape(", ".join(map(str, run.bad_files)))
        (_console(stderr=True) if html_only else console).print(
            f"[yellow]skipped {len(run.bad_files)} unreadable cell file(s) in "
            f"{escape(str(run.folder.cells_dir))}: {names}[/] (`harness run --out` reruns them)",
            soft_wrap=True,  # file names whole, for the terminal to wrap
        )
    if html_only:
        click.echo(str(run.folder.report_html))
    else:
        _print_leaderboard(console, run.folder.path)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-t", "--task", required=True, help="Task of the saved model.")
@click.option("-m", "--model", required=True, help="Model name.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--prefix", required=True, help='Prompt, e.g. "2 3 4" (consecutive) or "hel" (hello).'
)
@click.option("--steps", type=int, default=5, show_default=True, help="Steps to generate.")
@_friendly
def predict(run_dir: str, task: str, model: str, seed: int, prefix: str, steps: int) -> None:
    """Continue a prefix with a model saved by `harness run --save-models`."""
    from harness.api import predict as continue_prompt

    click.echo(continue_prompt(run_dir, task, model, seed, prefix, steps))


@main.command("bench-plot")
@click.argument("json_path", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--out", type=click.Path(file_okay=False), default="results/benchmarks", show_default=True
)
@_friendly
def bench_plot(json_path: str, out: str) -> None:
    """Plot a saved pytest-benchmark JSON (timings per model, scaling sweeps)."""
    from harness.api import plot_benchmarks

    for path in plot_benchmarks(json_path, out):
        click.echo(str(path))


@main.command()
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@click.option("--markdown", "as_markdown", is_flag=True, help="Print markdown, not tables.")
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Also write markdown here."
)
@click.option(
    "--threshold",
    type=float,
    default=0.01,
    show_default=True,
    help="Smallest relative quality change that is flagged.",
)
@click.option(
    "--speed-threshold",
    type=float,
    default=0.10,
    show_default=True,
    help="Smallest relative speed change that is flagged.",
)
@click.option(
    "--fail-on-regression", is_flag=True, help="Exit 1 when a regression is flagged (for CI)."
)
@_friendly
def compare(
    run_a: str,
    run_b: str,
    as_markdown: bool,
    output: str | None,
    threshold: float,
    speed_threshold: float,
    fail_on_regression: bool,
) -> None:
    """Compare run B against run A: quality and speed per model and per cell, regressions."""
    from harness.api import compare as compare_runs

    result = compare_runs(run_a, run_b, threshold=threshold, speed_threshold=speed_threshold)
    text = result.markdown()
    if output:
        Path(output).write_text(text)
    if as_markdown:
        click.echo(text, nl=False)
    else:
        _print_comparison(_console(), result)
    if fail_on_regression and result.regressions:
        sys.exit(EXIT_FAILED_CELLS)


def _print_comparison(console: Any, result: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    styles = {"worse": "red", "slower": "red", "better": "green", "faster": "green"}
    console.print(Text(f"A: {result.a}\nB: {result.b}"))
    for title, frame in result.sections():
        table = Table(title=title)
        for column in frame.columns:
            table.add_column(str(column), overflow="fold")
        for row in frame.itertuples(index=False):
            cells = []
            for value in map(str, row):
                word = value.split()[-1] if value.split() else ""
                cells.append(Text(value, style=styles.get(word, "")))
            table.add_row(*cells)
        console.print(table)
    for name, cells in (("only in B", result.added), ("only in A", result.removed)):
        if cells:
            console.print(Text(f"cells {name}: {', '.join(cells)}"))
    for note in result.notes:
        console.print(Text(note, style="dim"))
    for regression in result.regressions:
        console.print(Text(f"regression: {regression}", style="red"))
    if not result.regressions:
        console.print(Text("no regression", style="green"))
