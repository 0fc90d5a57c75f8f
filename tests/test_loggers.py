"""--log tensorboard --log mlflow: what a run logs, read back with each tool's own reader
(TensorBoard's EventAccumulator, MLflow's MlflowClient), with every executor; a resumed run
logs only the cells it adds; a tracker that fails costs one warning line, never the run; a
missing tracker package is one line before any cell.

Needs the ``tensorboard`` and ``mlflow`` extras (``make test`` installs them). Without them
these tests are skipped, except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import HarnessError, Logger, hookimpl
from harness.api import execute_run
from harness.plugin_api.manager import load_plugins
from harness.settings.config import RunConfig, load_config
from harness.storage.run_folder import RunFolder
from tests.conftest import HARNESS, assert_one_line, invoke

for _package in ("tensorboard", "mlflow"):
    if importlib.util.find_spec(_package) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{_package} is not installed, and CI must run the logger tests")
        pytest.skip(f"{_package} is not installed (pip install 'harness[{_package}]')",
                    allow_module_level=True)  # fmt: skip

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

EPOCHS = 2


def config(out: Path, **settings) -> RunConfig:
    settings = {
        "tasks": ["hello"],
        "models": ["rnn", "gru"],
        "epochs": EPOCHS,
        "timing": False,
        "executor": "local",
        "threads": 1,
        "out": str(out),
        "log": ["tensorboard", "mlflow"],
        **settings,
    }
    result = RunConfig(**settings)
    result.validate()
    return result


def run(out: Path, notes: list[str] | None = None, registry=None, **settings):
    notes = notes if notes is not None else []
    return execute_run(config(out, **settings), registry=registry, on_notice=notes.append)


def records(out: Path) -> dict[str, dict]:
    return {r["cell_id"]: r for r in RunFolder(out).read_records()}


# -- reading back -------------------------------------------------------------------------


def tensorboard_run(out: Path, record: dict) -> EventAccumulator:
    folder = RunFolder(out)
    events = EventAccumulator(str(folder.cell_log_dir(folder.logger_dir("tensorboard"), record)))
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in events.Scalars(tag)]


def hparams(events: EventAccumulator) -> dict:
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {
        key: value.string_value if value.HasField("string_value") else value.number_value
        for key, value in start.hparams.items()
    }


def mlflow_client(out: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{RunFolder(out).mlflow_db.resolve()}")


def mlflow_runs(client: MlflowClient) -> tuple[list, list]:
    """(parent runs, child runs) of the experiment ``harness``."""
    experiment = client.get_experiment_by_name("harness")
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in found if r.data.tags.get("harness.level") == "run"]
    children = [r for r in found if r.data.tags.get("harness.level") == "cell"]
    return parents, children


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def curve(record: dict, key: str) -> list[tuple[int, float]]:
    return [(row["epoch"], row[key]) for row in record["curve"]]


def assert_close(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [step for step, _ in got] == [step for step, _ in want]
    assert [value for _, value in got] == pytest.approx([value for _, value in want], rel=1e-6)


def assert_logged_everywhere(out: Path) -> None:
    """Every cell of the run in both trackers, read back with their own readers."""
    cells = records(out)
    assert cells and all(r["status"] == "ok" for r in cells.values())
    for record in cells.values():
        events = tensorboard_run(out, record)
        assert_close(scalars(events, "epoch/train_loss"), curve(record, "train_loss"))
        assert_close(scalars(events, "epoch/val_accuracy"), curve(record, "val_accuracy"))
        [(step, test_accuracy)] = scalars(events, "final/test_accuracy")
        assert step == record["selected_epoch"]
        assert test_accuracy == pytest.approx(record["test_accuracy"])
        shown = hparams(events)
        assert (shown["task"], shown["model"], shown["status"]) == ("hello", record["model"], "ok")
        assert shown["recipe.lr"] == pytest.approx(record["lr"])
        assert shown["config_hash"] == record["config_hash"]

    client = mlflow_client(out)
    [parent], children = mlflow_runs(client)
    assert parent.info.status == "FINISHED" and parent.info.run_name == out.name
    assert parent.data.params["config.epochs"] == str(EPOCHS)
    assert "environment.torch" in parent.data.params
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "run.json", "cells.csv", "leaderboard.md", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/hello_loss_curves.png" in plots
    by_cell = {child.info.run_name: child for child in children}
    assert sorted(by_cell) == sorted(cells)  # one child per cell, none twice
    for cell_id, child in by_cell.items():
        record = cells[cell_id]
        tags = child.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert (tags["task"], tags["model"], tags["seed"], tags["status"]) == (
            "hello", record["model"], str(record["seed"]), "ok",
        )  # fmt: skip
        assert child.info.status == "FINISHED"
        params = child.data.params
        assert params["config_hash"] == record["config_hash"]
        assert params["recipe.epochs"] == str(EPOCHS) and params["task.target"] == "ohlol"
        assert params["torch_version"] == record["torch_version"]
        run_id = child.info.run_id
        assert_close(history(client, run_id, "epoch/train_loss"), curve(record, "train_loss"))
        assert_close(history(client, run_id, "epoch/val_loss"), curve(record, "val_loss"))
        assert child.data.metrics["final/test_loss"] == pytest.approx(record["test_loss"])
    info = json.loads((out / "run.json").read_text())
    assert set(info["loggers"]) == {"tensorboard", "mlflow"}
    assert not any("error" in entry for entry in info["loggers"].values())


# -- every executor -----------------------------------------------------------------------


@pytest.mark.parametrize("executor, workers", [("local", None), ("pool", 2)])
def test_a_run_logged_to_both_reads_back_with_each_tools_reader(tmp_path, executor, workers):
    notes: list[str] = []
    out = tmp_path / "run"
    result = run(out, notes, executor=executor, workers=workers)
    assert len(result.records) == 2
    assert not [note for note in notes if "logger" in note], notes
    assert_logged_everywhere(out)


@pytest.mark.slow
def test_a_ray_run_logs_from_the_driver(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "run"
    args = ["run", "-t", "hello", "-m", "rnn", "-m", "gru", "--epochs", str(EPOCHS)]
    args += ["--no-timing", "--executor", "ray", "--log", "tensorboard", "--log", "mlflow"]
    env = {**os.environ, "COLUMNS": "200", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    result = subprocess.run(
        [*HARNESS, *args, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert f"tensorboard: tensorboard --logdir {out.resolve()}" in result.stdout
    assert "mlflow: mlflow ui --backend-store-uri sqlite:///" in result.stdout
    assert_logged_everywhere(out)


# -- resuming -----------------------------------------------------------------------------


def test_a_resumed_run_logs_only_the_cells_it_adds(tmp_path):
    out = tmp_path / "run"
    run(out, models=["rnn"])
    first = records(out)
    run(out, models=["rnn"], seeds=2)  # seed 0 is on disk: only seed 1 runs, and is logged
    run(out, models=["rnn"], seeds=2)  # nothing to add: nothing logged
    cells = records(out)
    assert sorted(cells) == ["hello__rnn__seed0", "hello__rnn__seed1"]
    assert cells["hello__rnn__seed0"]["wall_seconds"] == first["hello__rnn__seed0"]["wall_seconds"]

    for record in cells.values():  # one event file per cell, each epoch once
        folder = RunFolder(out)
        run_dir = folder.cell_log_dir(folder.logger_dir("tensorboard"), record)
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
        logged = scalars(tensorboard_run(out, record), "epoch/train_loss")
        assert_close(logged, curve(record, "train_loss"))

    client = mlflow_client(out)
    [parent], children = mlflow_runs(client)  # the resumed parts went on in the same parent
    assert parent.info.status == "FINISHED"
    assert sorted(child.info.run_name for child in children) == sorted(cells)
    for child in children:
        assert len(history(client, child.info.run_id, "epoch/train_loss")) == EPOCHS


# -- a tracker that fails -----------------------------------------------------------------


class FlakyTracker:
    """A logger plugin whose disk fills up at its second cell."""

    def __init__(self) -> None:
        self.logged: list[str] = []
        self.finished = False

    @hookimpl
    def register_loggers(self, register):
        register(Logger("flaky", "fails at its second cell", self.open))

    def open(self, context):
        tracker = self

        class Run:
            target = "nowhere"

            def log_cell(self, record):
                if tracker.logged:
                    raise OSError(28, "No space left on device")
                tracker.logged.append(record["cell_id"])

            def finish(self, status, files):
                tracker.finished = True

        return Run()


def test_a_tracker_failing_mid_run_warns_once_and_the_run_completes(tmp_path):
    flaky = FlakyTracker()
    registry = load_plugins(allow=["hello", "rnn", "gru", "tensorboard"], extra=[("flaky", flaky)])
    notes: list[str] = []
    out = tmp_path / "run"
    result = run(out, notes, models=["rnn", "gru"], seeds=2, log=["flaky", "tensorboard"],
                 registry=registry)  # fmt: skip
    assert len(result.records) == 4 and all(r["status"] == "ok" for r in result.records)
    [warning] = [note for note in notes if "logger" in note]
    assert "logger flaky failed" in warning and "No space left on device" in warning
    assert "\n" not in warning
    assert len(flaky.logged) == 1 and not flaky.finished  # dropped at its failure
    assert (out / "report.html").is_file() and (out / "leaderboard.md").is_file()
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished"
    assert "No space left on device" in info["loggers"]["flaky"]["error"]
    for record in records(out).values():  # the other tracker logged every cell
        assert len(scalars(tensorboard_run(out, record), "epoch/train_loss")) == EPOCHS


class Interrupting(FlakyTracker):
    """Ctrl-C arrives while it logs the first cell."""

    def open(self, context):
        run = super().open(context)
        tracker = self

        class Run(type(run)):
            def log_cell(self, record):
                raise KeyboardInterrupt

            def finish(self, status, files):
                tracker.finished = status

        return Run()


def test_an_interrupted_run_still_finishes_its_loggers(tmp_path):
    tracker = Interrupting()
    registry = load_plugins(allow=["hello", "rnn"], extra=[("flaky", tracker)])
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out, models=["rnn"], log=["flaky"], registry=registry)
    assert tracker.finished == "interrupted"  # after the report: the run's end, however it came
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert (out / "report.html").is_file()


def test_mlflow_failing_mid_run_warns_once_and_tensorboard_and_the_run_go_on(tmp_path, monkeypatch):
    from harness.loggers import mlflow as mlflow_logger

    real = mlflow_logger.MlflowRun.log_cell
    calls = []

    def log_cell(self, record):
        calls.append(record["cell_id"])
        if len(calls) == 2:  # the server goes away
            monkeypatch.setattr(self.client, "create_run", _refused)
        real(self, record)

    monkeypatch.setattr(mlflow_logger.MlflowRun, "log_cell", log_cell)
    notes: list[str] = []
    out = tmp_path / "run"
    run(out, notes, models=["rnn"], seeds=3)
    [warning] = [note for note in notes if "logger" in note]
    assert warning.startswith("logger mlflow failed") and "Connection refused" in warning
    assert len(calls) == 2  # not called again once it failed
    client = mlflow_client(out)
    [parent], children = mlflow_runs(client)
    assert [child.info.run_name for child in children] == ["hello__rnn__seed0"]
    assert len(records(out)) == 3 and (out / "report.html").is_file()
    for record in records(out).values():
        assert len(scalars(tensorboard_run(out, record), "epoch/train_loss")) == EPOCHS


def _refused(*args, **kwargs):
    raise ConnectionRefusedError(111, "Connection refused")


def test_an_unreachable_tracking_server_is_one_warning_and_the_run_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: closed
    notes: list[str] = []
    out = tmp_path / "run"
    result = run(out, notes, models=["rnn"], log=["mlflow"])
    assert [r["status"] for r in result.records] == ["ok"]
    [warning] = notes
    assert warning.startswith("logger mlflow failed") and "cannot reach" in warning
    assert "127.0.0.1:9" in warning and (out / "report.html").is_file()
    assert not RunFolder(out).mlflow_db.exists()


# -- choosing loggers ---------------------------------------------------------------------


def test_a_missing_tracker_package_is_one_line_before_any_cell(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "mlflow" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    out = tmp_path / "run"
    result = invoke("run", "-t", "hello", "-m", "rnn", "--log", "mlflow", "--out", str(out))
    assert_one_line(result, "mlflow needs mlflow: pip install 'harness[mlflow]'")
    assert not out.exists()  # refused before a folder, let alone a cell
    registry = load_plugins()
    assert "mlflow" not in registry.loggers and "tensorboard" in registry.loggers
    [missing] = registry.unavailable
    assert missing.offers == ("mlflow",) and not registry.broken


def test_an_unknown_logger_is_one_line_with_the_closest_name(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "-t", "hello", "-m", "rnn", "--log", "tensorbord", "--out", str(out))
    assert_one_line(result, "unknown logger 'tensorbord'; did you mean 'tensorboard'?")
    assert not out.exists()


def test_loggers_come_from_the_config_file_too(tmp_path):
    toml = tmp_path / "harness.toml"
    toml.write_text('log = "tensorboard"\nlog_dir = "tb"\n')
    assert load_config(toml, {}).log == ["tensorboard"]
    assert load_config(toml, {"log": ["mlflow"]}).log == ["mlflow"]  # a flag wins
    toml.write_text("log = [3]\n")
    with pytest.raises(HarnessError, match="setting 'log' must be a list of strings"):
        load_config(toml, {})


def test_log_dir_gathers_the_event_files_of_many_runs(tmp_path):
    base = tmp_path / "tb"
    for name in ("a", "b"):
        run(tmp_path / name, models=["rnn"], log=["tensorboard"], log_dir=str(base))
    runs = sorted(str(p.relative_to(base)) for p in base.glob("*/*/hello/rnn/*"))
    assert [r.split("/")[:2] for r in runs] == [["a", "tensorboard"], ["b", "tensorboard"]]
    assert not (tmp_path / "a" / "logs").exists()


def test_harness_list_shows_the_loggers():
    result = invoke("list")
    assert result.exit_code == 0, result.output
    assert "loggers (--log NAME)" in result.output
    assert "tensorboard" in result.output and "mlflow" in result.output


# -- the contract -------------------------------------------------------------------------


def test_a_plugin_registers_a_logger_through_the_hook():
    flaky = FlakyTracker()
    registry = load_plugins(allow=[], extra=[("flaky", flaky)])
    assert list(registry.loggers) == ["flaky"] and not registry.broken
    assert registry.origin("logger", "flaky").plugin == "flaky"


@pytest.mark.parametrize(
    "offered, error",
    [
        ("not a logger", "which is not a harness.Logger"),
        (Logger("a b", "spaces", lambda c: None), "invalid name 'a b'"),
        (Logger("x", "no function", "open"), "open must be a function"),
    ],
)
def test_a_bad_logger_registration_breaks_only_its_plugin(offered, error):
    plugin = SimpleNamespace(register_loggers=hookimpl(lambda register: register(offered)))
    registry = load_plugins(allow=["hello"], extra=[("bad", plugin)])
    [broken] = registry.broken
    assert error in broken.error and "hello" in registry.tasks and not registry.loggers


def test_the_documented_logger_plugin_works(tmp_path):
    import re
    import types

    text = (Path(__file__).resolve().parents[1] / "docs" / "loggers.md").read_text()
    [source] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    module = types.ModuleType("harness_jsonl")
    exec(compile(source, "docs/loggers.md", "exec"), module.__dict__)
    registry = load_plugins(allow=["hello", "rnn"], extra=[("jsonl", module)])
    assert "jsonl" in registry.loggers and not registry.broken
    out = tmp_path / "run"
    run(out, models=["rnn"], seeds=2, log=["jsonl"], registry=registry)
    lines = (out / "logs" / "jsonl" / "cells.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r.get("cell_id") for r in rows[:2]] == ["hello__rnn__seed0", "hello__rnn__seed1"]
    assert all(r["status"] == "ok" and r["epochs"] == EPOCHS for r in rows[:2])
    assert rows[2]["run"] == "finished" and rows[2]["files"] >= 5
    info = json.loads((out / "run.json").read_text())
    assert info["loggers"]["jsonl"]["target"].endswith("cells.jsonl")


def test_a_tune_logs_its_final_cells_not_its_trials(tmp_path):
    pytest.importorskip("optuna")
    from harness.api import execute_tune

    out = tmp_path / "tune"
    result = execute_tune(config(out, models=["rnn"], trials=2, log=["tensorboard"]))
    assert len(result.trials) == 2 and len(result.records) == 1
    logged = sorted(p.relative_to(out / "logs" / "tensorboard") for p in out.glob("logs/*/*/*/*"))
    [final] = result.records
    assert [str(p) for p in logged] == [f"hello/rnn/seed0-{final['config_hash'][:8]}"]
    assert_close(
        scalars(tensorboard_run(out, final), "epoch/train_loss"), curve(final, "train_loss")
    )


def test_a_sweep_variant_gets_its_own_tensorboard_run_and_its_values_as_params():
    from harness.loggers.figures import cell_params, cell_tags

    record = {
        "task": "mqar", "model": "gru", "seed": 1, "status": "ok", "hidden_size": 32,
        "config_hash": "0123456789abcdef", "variant": "hidden_size=32, mqar.length=64",
        "variant_slug": "hidden_size=32,mqar.length=64",
        "sweep": {"hidden_size": 32, "mqar.length": 64},
    }  # fmt: skip
    info = {"tasks": {"mqar": {"recipe": {"hidden_size": 64}, "options": {"length": 128}}}}
    run_dir = RunFolder.cell_log_dir(Path("tb"), record)
    assert run_dir == Path("tb/mqar/gru/hidden_size=32,mqar.length=64/seed1-01234567")
    params = cell_params(record, info)
    assert (params["recipe.hidden_size"], params["task.length"]) == (32, 64)
    assert params["sweep.mqar.length"] == 64
    assert cell_tags(record)["variant"] == "hidden_size=32, mqar.length=64"
