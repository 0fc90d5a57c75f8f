"""The built-in ``tensorboard`` logger: TensorBoard event files, one TensorBoard run per cell.

``<log dir>/<task>/<model>/[<variant>/]seed<N>-<config hash>/`` holds a cell's per-epoch figures as
scalars (``epoch/train_loss``, ``epoch/val_loss``, ...), its final figures (``final/test_loss``,
...) and, in TensorBoard's HParams view, its hyperparameters (task, model, seed, status, a
sweep's variant, the recipe, the options) against those final figures. ``tensorboard
--logdir <log dir>`` then compares the models; with ``--log-dir DIR`` one logdir gathers many
runs.

Written with ``torch.utils.tensorboard``, which needs the ``tensorboard`` package
(``pip install 'harness[tensorboard]'``).
"""

from __future__ import annotations

from typing import Any

from harness.loggers.contract import LogContext, Logger
from harness.plugin_api.hookspecs import hookimpl
from harness.plugin_api.manager import require

HARNESS_API = "1.2"
INSTALL = "pip install 'harness[tensorboard]'"


class TensorBoardRun:
    """One harness run's cells as TensorBoard runs under ``context.log_dir``."""

    def __init__(self, context: LogContext) -> None:
        from torch.utils.tensorboard import SummaryWriter  # the heavy import, in the driver only

        self.writer_class = SummaryWriter
        self.context = context
        self.log_dir = context.log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.target = f"tensorboard --logdir {self.log_dir.resolve()}"

    def log_cell(self, record: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        from harness.loggers.figures import (
            cell_params,
            cell_tags,
            epoch_figures,
            final_figures,
            final_step,
        )
        from harness.storage.run_folder import RunFolder

        run_dir = RunFolder.cell_log_dir(self.log_dir, record)
        finals = final_figures(record)
        tags = cell_tags(record)
        hyper = {
            **{key: tags[key] for key in ("task", "model", "status", "variant") if key in tags},
            "seed": record["seed"],
            **cell_params(record, self.context.info),
        }
        writer = self.writer_class(log_dir=str(run_dir))
        try:
            for epoch, figures in epoch_figures(record):
                for tag, value in figures.items():
                    writer.add_scalar(tag, value, epoch)
            step = final_step(record)
            for tag, value in finals.items():
                writer.add_scalar(tag, value, step)
            if tags.get("error"):
                writer.add_text("error", tags["error"], step)
            # the HParams view: this run's hyperparameters against its final figures (the
            # summaries torch's add_hparams writes, but into this run, not a new one beside it)
            file_writer = writer._get_file_writer()
            for summary in hparams({k: v for k, v in hyper.items() if v is not None}, finals):
                file_writer.add_summary(summary)
        finally:
            writer.close()

    def finish(self, status: str, files: list[Any]) -> None:
        """Every cell's writer is closed as soon as it is written: nothing is left to do."""


def open_run(context: LogContext) -> TensorBoardRun:
    return TensorBoardRun(context)


@hookimpl
def register_loggers(register):
    require("tensorboard", install=INSTALL, offers=("tensorboard",))
    register(
        Logger(
            name="tensorboard",
            description="TensorBoard event files: per-epoch scalars and HParams, a run per cell",
            open=open_run,
        )
    )
