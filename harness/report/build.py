"""Everything a run leaves behind, rebuilt from the cell records: tables, leaderboard, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report import plots
from harness.report import ranking as leaderboard
from harness.report.tables import cells_frame, curves_frame
from harness.storage import write_atomic, write_frame


def write_report(
    out: Path, records: list[dict[str, Any]], metas: dict[str, dict[str, Any]]
) -> None:
    """Write cells.{csv,parquet}, curves.{csv,parquet}, leaderboard.{md,csv} and plots/*.png."""
    cells = cells_frame(records)
    curves = curves_frame(records)
    write_frame(cells, out / "cells")
    write_frame(curves, out / "curves")
    write_atomic(out / "leaderboard.md", leaderboard.markdown(cells, metas).encode())
    boards = []
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    for task, meta in metas.items():
        board = leaderboard.aggregate(cells, task, meta)
        if not board.empty:
            boards.append(board.assign(task=task))
        plots.loss_curves(curves, task, plot_dir)
        plots.metric_bars(board, task, meta, plot_dir)
        plots.predictions(records, task, plot_dir)
    if boards:
        import pandas as pd

        frame = pd.concat(boards, ignore_index=True)
        write_atomic(out / "leaderboard.csv", frame.to_csv(index=False).encode())


def load_run(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cell records and run.json of an earlier run folder."""
    info = json.loads((out / "run.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    return records, info
