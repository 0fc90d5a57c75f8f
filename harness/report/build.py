"""Everything a run leaves behind, rebuilt from the cell records: tables, leaderboard, plots,
and report.html."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from harness.report import html, plots, sweep
from harness.report import ranking as leaderboard
from harness.report.run import LoadedRun
from harness.report.tables import curves_frame, typed_per_task
from harness.storage.escape import md_text
from harness.storage.files import csv_bytes, write_atomic, write_frame

FIGURES = ("loss_curves", "metrics", "predictions")
#: A swept task's figure: its curves over the variants (its boards are per variant, so the
#: per-board figures above are left out for it).
SWEEP_FIGURE = "sweep"


def write_report(run: LoadedRun) -> None:
    """Write cells.{csv,parquet}, curves.{csv,parquet}, leaderboard.{md,csv}, plots/*.png
    and report.html into the run's folder."""
    folder, cells = run.folder, run.cells
    write_frame(typed_per_task(cells), folder.cells_table)  # own metrics keep their type
    write_frame(curves_frame(run.records), folder.curves_table)
    write_atomic(folder.leaderboard_md, leaderboard_markdown(run).encode())
    boards = [
        board.frame.assign(task=board.task, **({"variant": board.variant} if board.variant else {}))
        for board in run.leaderboards()
    ]
    if boards:
        frame = pd.concat(boards, ignore_index=True)
        write_atomic(folder.leaderboard_csv, csv_bytes(frame))
    svgs: dict[str, dict[str, str]] = {}
    for task, kind, figure in figures(run):
        svgs.setdefault(task, {})[kind] = plots.to_svg(figure)
        plots.save_png(figure, folder.plot_file(task, kind))
    write_html(run, svgs)


def leaderboard_markdown(run: LoadedRun) -> str:
    """leaderboard.md: the verdicts first ("In short"), then the leaderboards."""
    units = [(t, v, m, run.unit_cells(t, v)) for t, v, m in run.units]
    document = leaderboard.markdown(run.cells, run.metas, units, run.info.get("timing") or {})
    title, _, rest = document.partition("\n\n")
    lines = [title, "", "## In short", ""]
    lines += [f"- {md_text(v.text)}" for v in run.verdicts()]
    return "\n".join(lines) + "\n\n" + rest


def write_html(run: LoadedRun, svgs: dict[str, dict[str, str]] | None = None) -> None:
    """Write report.html; without ``svgs`` the figures are drawn again (no PNG is written)."""
    if svgs is None:
        svgs = {}
        for task, kind, figure in figures(run):
            svgs.setdefault(task, {})[kind] = plots.to_svg(figure)
            plots.close(figure)
    write_atomic(run.folder.report_html, html.render(run, svgs).encode())


def figures(run: LoadedRun) -> Iterator[tuple[str, str, Any]]:
    """(task, kind, matplotlib figure) for every figure of the run, drawn one at a time."""
    colours = plots.model_colours(run.models)
    curves = curves_frame(run.records)
    boards = {board.task: board.frame for board in run.leaderboards() if not board.variant}
    for task, meta in run.metas.items():
        if sweep.variants(run.cells, task):
            order = [axis.get("name") for axis in run.info.get("sweep") or []]
            figure = sweep.curve_figure(run.cells, task, meta, colours, order)
            if figure is not None:
                yield task, SWEEP_FIGURE, figure
            continue
        board = boards.get(task, pd.DataFrame())
        for kind in FIGURES:
            if kind == "loss_curves":
                figure = plots.loss_curves(curves, task, meta, colours)
            elif kind == "metrics":
                figure = plots.metric_dots(board, task, meta, colours)
            else:
                figure = plots.predictions(run.records, task, colours)
            if figure is not None:
                yield task, kind, figure


def rebuild(path: Any, html_only: bool = False) -> LoadedRun:
    """Rewrite every table, plot and report.html of a run folder from its cell records."""
    run = LoadedRun.load(path)
    if html_only:
        write_html(run)
    else:
        write_report(run)
    return run
