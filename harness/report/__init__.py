"""The report of a run folder: tables, ranking and statistics, plots, and the files they go to.

``tables`` turns cell records into pandas tables, ``ranking`` aggregates seeds into
leaderboards with intervals and honest ranks, ``plots`` draws the figures, ``meta`` is what the
report knows of each task, ``run`` reads a run folder back, and ``build`` writes the files.
"""

from harness.report.build import rebuild, write_report
from harness.report.meta import Reference, TaskMeta
from harness.report.run import Leaderboard, LoadedRun

__all__ = ["Leaderboard", "LoadedRun", "Reference", "TaskMeta", "rebuild", "write_report"]
