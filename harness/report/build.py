"""Everything a run leaves behind, rebuilt from the cell records: tables, leaderboard, plots,
and report.html."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from harness.report import html, plots
from harness.report import ranking as leaderboard
from harness.report.run import LoadedRun
from harness.report.tables import curves_frame
from harness.storage.files import csv_bytes, write_atomic, write_frame

FIGURES = ("loss_curves", "metrics", "predictions")


def write_report(run: LoadedRun) -> None:
    """Write cells.{csv,parquet}, curves.{csv,parquet}, leaderboard.{md,csv}, plots/*.png
    and report.html into the run's folder."""
    folder, cells = run.folder, run.cells
    write_frame(cells, folder.cells_table)
    write_frame(curves_frame(run.records), folder.curves_table)
    write_atomic(folder.leaderboard_md, leaderboard.markdown(cells, run.metas).encode())
    boards = [board.frame.assign(task=board.task) for board in run.leaderboards()]
    if boards:
        frame = pd.concat(boards, ignore_index=True)
        write_atomic(folder.leaderboard_csv, csv_bytes(frame))
    svgs: dict[str, dict[str, str]] = {}
    for task, kind, figure in figures(run):
        svgs.setdefault(task, {})[kind] = plots.to_svg(figure)
        plots.save_png(figure, folder.plot_file(task, kind))
    write_html(run, svgs)


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
    boards = {board.task: board.frame for board in run.leaderboards()}
    for task, meta in run.metas.items():
        board = boards.get(task, pd.DataFrame())
        for kind in FIGURES:
            if kind == "loss_curves":
                figure = plots.loss_curves(curves, task, meta, colours)
            elif kind == "metrics":
                figure = plots.metric_bars(board, task, meta, colours)
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
