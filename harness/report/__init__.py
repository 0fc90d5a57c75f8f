"""The report of a run folder: tables, ranking and statistics, plots, and the files they go to.

``tables`` turns cell records into pandas tables, ``ranking`` aggregates seeds into
leaderboards with intervals and honest ranks, ``plots`` draws the figures, and ``build``
writes them all into a run folder.
"""

from harness.report.build import load_run, write_report

__all__ = ["load_run", "write_report"]
