"""The status vocabulary, in one place: what a cell record's ``status`` and a run.json's
``status`` may say, and the groups the tables and verdicts use."""

from __future__ import annotations

#: A cell record's status.
OK, FAILED, DIVERGED, NOT_APPLICABLE = "ok", "failed", "diverged", "not-applicable"
CELL_STATUSES = (OK, FAILED, DIVERGED, NOT_APPLICABLE)
#: Cells that ran and did not finish: a failure of the model, task or machine.
BROKEN = (FAILED, DIVERGED)
#: Every cell without figures to rank: the broken ones and those that were never run.
UNFINISHED = (FAILED, DIVERGED, NOT_APPLICABLE)

#: A run.json's status through a run's life.
RUNNING, FINISHED, INTERRUPTED, RUN_FAILED = "running", "finished", "interrupted", "failed"
