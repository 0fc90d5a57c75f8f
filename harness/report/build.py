"""Everything a run leaves behind, rebuilt from the cell records: tables, leaderboard, plots."""

from __future__ import annotations

from typing import Any

from harness.report import plots
from harness.report import ranking as leaderboard
from harness.report.meta import TaskMeta
from harness.report.run import LoadedRun
from harness.report.tables import cells_frame, curves_frame
from harness.run_folder import RunFolder
from harness.storage import write_atomic, write_frame


def write_report(
    folder: RunFolder, records: list[dict[str, Any]], metas: dict[str, TaskMeta]
) -> None:
    """Write cells.{csv,parquet}, curves.{csv,parquet}, leaderboard.{md,csv} and plots/*.png."""
    cells = cells_frame(records)
    curves = curves_frame(records)
    write_frame(cells, folder.cells_table)
    write_frame(curves, folder.curves_table)
    write_atomic(folder.leaderboard_md, leaderboard.markdown(cells, metas).encode())
    boards = []
    folder.plots_dir.mkdir(exist_ok=True)
    for task, meta in metas.items():
        board = leaderboard.aggregate(cells, task, meta)
        if not board.empty:
            boards.append(board.assign(task=task))
        figures = {
            "loss_curves": plots.loss_curves(curves, task),
            "metrics": plots.metric_bars(board, task, meta),
            "predictions": plots.predictions(records, task),
        }
        for kind, figure in figures.items():
            if figure is not None:
                plots.save_png(figure, folder.plot_file(task, kind))
    if boards:
        import pandas as pd

        frame = pd.concat(boards, ignore_index=True)
        write_atomic(folder.leaderboard_csv, frame.to_csv(index=False).encode())


def rebuild(path: Any) -> LoadedRun:
    """Rewrite every table and plot of an existing run folder from its cell records."""
    run = LoadedRun.load(path)
    write_report(run.folder, run.records, run.metas)
    return run
