"""The built-in ``mlflow`` logger: a parent MLflow run per harness run, a child run per cell.

The parent holds the run's settings and versions as params (``config.*``, ``resolved.*``,
``environment.*``) and, once the report is written, run.json, the report, the leaderboard,
the tables and the plots as artifacts. Each child holds its cell's hyperparameters, versions
and config hash as params, its per-epoch figures as metric histories (``epoch/train_loss``,
step = epoch), its final figures (``final/test_loss``, ...) and tags ``task``, ``model``,
``seed``, ``status``. A resumed run adds its new cells to the same parent.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else a SQLite store in the run folder
(``<run>/logs/mlflow.db``: ``mlflow ui --backend-store-uri sqlite:///...``); the experiment is
``MLFLOW_EXPERIMENT_NAME``, else ``harness``. Needs ``pip install 'harness[mlflow]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.loggers.contract import LogContext, Logger
from harness.plugin_api.hookspecs import hookimpl
from harness.plugin_api.manager import require

HARNESS_API = "1.2"
INSTALL = "pip install 'harness[mlflow]'"
EXPERIMENT = "harness"
#: how a harness run's status reads as an MLflow run's
STATUSES = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
#: what an MLflow server of any version takes (longer values are cut; run.json has them whole)
MAX_PARAM = 500
MAX_TAG = 5000
#: MLflow's limits on one log_batch call
BATCH_PARAMS, BATCH_METRICS = 100, 1000
#: seconds an HTTP tracking server has to accept a connection when the run starts
PROBE_SECONDS = 5.0
KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_\-. /]")


def _key(name: str) -> str:
    """A metric or param name MLflow takes (letters, digits, ``_-. /``)."""
    return KEY_CHARACTERS.sub("_", name)


def _text(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_reachable(uri: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail at once when an HTTP tracking server does not answer: MLflow's client would retry
    it for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``) before any cell runs."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # a file or database store, or a platform's own scheme (databricks)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectionError(f"cannot reach the tracking server {uri}: {reason}") from None


@contextlib.contextmanager
def _quiet_store_setup() -> Iterator[None]:
    """Without MLflow's two INFO lines about creating a new store's tables (they would land
    in the middle of the run's progress bar)."""
    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class MlflowRun:
    """One harness run as a parent MLflow run, its cells as children."""

    def __init__(self, context: LogContext) -> None:
        from mlflow.tracking import MlflowClient  # the heavy import, in the driver only

        from harness.loggers.figures import run_params

        folder = context.folder
        self.context = context
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        local = not uri
        if local:
            folder.logs_dir.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{folder.mlflow_db.resolve()}"
        else:
            _check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        with _quiet_store_setup():  # the first call makes the SQLite tables
            experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = folder.mlflow_artifacts.resolve().as_uri() if local else None
            self.experiment_id = self.client.create_experiment(name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        #: names this run folder in the tracker, whichever machine or path it is read from
        self.run_key = hashlib.sha256(str(folder.path.resolve()).encode()).hexdigest()[:16]
        parent = self._earlier_parent() if context.resumed else None
        if parent is None:
            parent = self.client.create_run(
                self.experiment_id,
                run_name=context.run_name,
                tags={
                    "harness.level": "run",
                    "harness.run_key": self.run_key,
                    "harness.run_folder": str(folder.path.resolve()),
                    "harness.command": str(context.info.get("command", "run")),
                },
            )
            self._log(parent.info.run_id, params=run_params(context.info))
        else:  # its params stay those it began with (MLflow never changes one); run.json,
            # logged again at the end, has this part's settings
            self.client.update_run(parent.info.run_id, status="RUNNING")
        self.parent_id = parent.info.run_id
        where = f"mlflow ui --backend-store-uri {uri}" if local else uri
        self.target = f"{where} (experiment {name!r}, run {self.parent_id})"

    def _earlier_parent(self) -> Any:
        """The parent run an earlier part of this (resumed) run made, or ``None``."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`harness.run_key` = '{self.run_key}' and tags.`harness.level` = 'run'"
            ),
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return found[0] if found else None

    def log_cell(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from harness.loggers.figures import (
            cell_params,
            cell_tags,
            epoch_figures,
            final_figures,
            final_step,
        )

        now = int(time.time() * 1000)
        seconds = record.get("wall_seconds")
        started = now - int(1000 * seconds) if isinstance(seconds, (int, float)) else now
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_id,
            "harness.level": "cell",
            "harness.run_key": self.run_key,
            "config_hash": str(record.get("config_hash")),
            **cell_tags(record),
        }
        run = self.client.create_run(
            self.experiment_id,
            start_time=started,
            tags={key: _text(value, MAX_TAG) for key, value in tags.items()},
            run_name=record["cell_id"],
        )
        metrics = [
            Metric(_key(key), value, now, epoch)
            for epoch, figures in epoch_figures(record)
            for key, value in figures.items()
        ]
        step = final_step(record)
        metrics += [Metric(_key(k), v, now, step) for k, v in final_figures(record).items()]
        run_id = run.info.run_id
        try:
            self._log(run_id, params=cell_params(record, self.context.info), metrics=metrics)
        finally:
            status = "FINISHED" if record.get("status") == "ok" else "FAILED"
            self.client.set_terminated(run_id, status=status, end_time=now)

    def _log(self, run_id: str, params: dict[str, Any], metrics: list[Any] = ()) -> None:
        """Params and metrics in batches of the size MLflow takes."""
        from mlflow.entities import Param

        items = [Param(_key(k), _text(v, MAX_PARAM)) for k, v in params.items() if v is not None]
        for start in range(0, len(items), BATCH_PARAMS):
            self.client.log_batch(run_id, params=items[start : start + BATCH_PARAMS])
        metrics = list(metrics)
        for start in range(0, len(metrics), BATCH_METRICS):
            self.client.log_batch(run_id, metrics=metrics[start : start + BATCH_METRICS])

    def finish(self, status: str, files: list[Path]) -> None:
        """The report and its files as the parent's artifacts (laid out as in the folder),
        then the parent ends with the run's status."""
        root = self.context.folder.path
        try:
            for path in files:
                where = path.parent.relative_to(root).as_posix()
                self.client.log_artifact(self.parent_id, str(path), None if where == "." else where)
            self.client.set_tag(self.parent_id, "status", status)
        finally:
            self.client.set_terminated(self.parent_id, status=STATUSES.get(status, "FAILED"))


def open_run(context: LogContext) -> MlflowRun:
    return MlflowRun(context)


@hookimpl
def register_loggers(register):
    require("mlflow", install=INSTALL, offers=("mlflow",))
    register(
        Logger(
            name="mlflow",
            description="MLflow: a parent run per harness run, a child run per cell",
            open=open_run,
        )
    )
