"""Sweeps (#17): `--sweep NAME=V1,V2,...` over task options, model options, recipe fields and
params; each combination a variant that cells, ids, records, timings and resume carry."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.report.sweep import is_geometric
from harness.session import Session
from harness.settings.config import RunConfig
from harness.settings.sweep import axes, parse_sweep_flags, variants


def plan(registry, **settings) -> Session:
    config = RunConfig(device="cpu", **settings)
    config.validate()
    return Session.plan(config, registry=registry)


def test_flags_parse_into_lists_and_bad_ones_are_one_line():
    assert parse_sweep_flags(["hidden_size=8, 16", "mqar.length=64,128"]) == {
        "hidden_size": ["8", "16"], "mqar.length": ["64", "128"]
    }  # fmt: skip
    for bad in (["hidden_size"], ["=1,2"], ["hidden_size="], ["lr=1", "lr=2"]):
        with pytest.raises(HarnessError):
            parse_sweep_flags(bad)


def test_names_are_classified_and_recipe_values_typed(registry):
    found = axes(
        {"hidden_size": ["8", "16"], "lr": ["1e-3"], "sine.points": ["50"], "gru.x": ["1"],
         "params": ["500"]},
        registry.tasks, registry.models,
    )  # fmt: skip
    kinds = {a.name: (a.kind, a.target, a.values) for a in found}
    assert kinds["hidden_size"] == ("recipe", None, (8, 16))
    assert kinds["lr"] == ("recipe", None, (0.001,))
    assert kinds["sine.points"] == ("task", "sine", ("50",))
    assert kinds["gru.x"][:2] == ("model", "gru")
    assert kinds["params"] == ("params", None, (500,))
    assert [a.applies("sine", "rnn") for a in found] == [True, True, True, False, True]
    assert [a.applies("hello", "gru") for a in found] == [True, True, False, True, True]


@pytest.mark.parametrize(
    "sweep, words",
    [
        ({"colour": ["1"]}, "not a TASK.FIELD or MODEL.FIELD"),
        ({"nosuch.length": ["1"]}, "no installed task or model"),
        ({"hidden_size": ["big"]}, "hidden_size"),
        ({"params": ["0"]}, "positive integer"),
        ({"hidden_size": ["8", "8"]}, "listed twice"),
        ({"hidden_size": []}, "non-empty list"),
        (
            {"hidden_size": [str(v) for v in range(1, 20)], "lr": [str(v) for v in range(1, 20)]},
            "at most",
        ),
    ],
)
def test_bad_sweeps_are_refused_in_one_line(registry, sweep, words):
    with pytest.raises(HarnessError, match=words):
        axes(sweep, registry.tasks, registry.models)


def test_variants_are_every_combination_in_order():
    from harness.settings.sweep import Axis

    found = [Axis("a", (1, 2), "recipe"), Axis("b", ("x", "y"), "recipe")]
    assert variants(found) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"},
                               {"a": 2, "b": "y"}]  # fmt: skip
    assert variants([]) == [{}]


def test_geometric_values_get_a_log_axis():
    assert is_geometric([32, 64, 128]) and is_geometric([64, 256])
    assert not is_geometric([10, 20, 30]) and not is_geometric([0.1]) and not is_geometric([0, 1])


def test_a_swept_task_option_varies_only_its_task(registry):
    session = plan(registry, tasks=["hello", "sine"], models=["rnn", "gru"],
                   sweep={"hidden_size": ["8", "16"], "sine.points": ["50", "100"]})  # fmt: skip
    ids = sorted(c.cell_id for c in session.grid.cells)
    assert len(ids) == 4 + 8 == len(set(ids))  # hello: 2 models x 2 sizes; sine: x 2 points
    assert "hello__rnn__hidden_size=8__seed0" in ids
    assert "sine__gru__hidden_size=16,sine.points=100__seed0" in ids
    cell = next(c for c in session.grid.cells if c.cell_id.startswith("sine__gru__hidden_size=16"))
    assert cell.recipe.hidden_size == 16 and cell.task_options["points"] in (50, 100)
    assert cell.variant == {"hidden_size": 16, "sine.points": cell.task_options["points"]}
    assert set(session.variant_metas["sine"]) == {"sine.points=50", "sine.points=100"}
    hashes = {c.config_hash() for c in session.grid.cells}
    assert len(hashes) == len(ids)


def test_a_swept_model_option_varies_only_its_model(registry):
    session = plan(registry, tasks=["hello"], models=["rnn", "transformer"],
                   sweep={"transformer.heads": ["1", "2"]})  # fmt: skip
    ids = sorted(c.cell_id for c in session.grid.cells)
    assert ids == ["hello__rnn__seed0", "hello__transformer__transformer.heads=1__seed0",
                   "hello__transformer__transformer.heads=2__seed0"]  # fmt: skip


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"sweep": {"sine.points": ["50"]}, "tasks": ["hello"]}, "not in this run"),
        ({"sweep": {"transformer.heads": ["1"]}, "models": ["rnn"]}, "not in this run"),
        ({"sweep": {"hidden_size": ["8"]}, "hidden_size": 16}, "give it one way"),
        ({"sweep": {"params": ["500"]}, "hidden_size": 16}, "do not also set hidden_size"),
        ({"sweep": {"hidden_size": ["8"]}, "params": 500}, "params is set too"),
        ({"sweep": {"sine.points": ["50"]}, "options": {"sine": {"points": "60"}}}, "also set"),
        ({"sweep": {"sine.points": ["-5"]}}, "points"),
    ],
)
def test_conflicting_sweeps_are_refused_before_any_folder(registry, settings, words):
    settings = {"tasks": ["hello", "sine"], "models": ["rnn", "gru"], **settings}
    with pytest.raises(HarnessError, match=words):
        plan(registry, **settings)


def test_a_sweep_runs_records_and_resumes_per_variant(cli, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "-t", "hello", "-m", "rnn", "--sweep", "hidden_size=4,8",
            "--epochs", "1", "--no-timing", "--workers", "1"]  # fmt: skip
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert [(r["variant"], r["hidden_size"], r["sweep"]) for r in records] == [
        ("hidden_size=4", 4, {"hidden_size": 4}), ("hidden_size=8", 8, {"hidden_size": 8})
    ]  # fmt: skip
    info = json.loads((out / "run.json").read_text())
    assert info["sweep"] == [{"name": "hidden_size", "values": [4, 8], "kind": "recipe"}]
    import pandas as pd

    cells = pd.read_csv(out / "cells.csv")
    assert sorted(cells["sweep_hidden_size"]) == [4, 8]
    assert (out / "plots" / "hello_sweep.png").is_file()  # the curves
    assert not (out / "plots" / "hello_loss_curves.png").exists()  # per variant instead
    boards = pd.read_csv(out / "leaderboard.csv")
    assert sorted(boards["variant"]) == ["hidden_size=4", "hidden_size=8"]
    html = (out / "report.html").read_text()
    assert "hello [hidden_size=4]" in html and "hello [hidden_size=8]" in html
    assert "Sweep summary" in html and "max " in html
    assert "hello [hidden_size=4]" in first.stdout  # a board per variant in the terminal too
    markdown = (out / "leaderboard.md").read_text().splitlines()
    assert sum(line.startswith("## hello ") for line in markdown) == 2  # a section per variant
    from harness.api import compare

    compared = compare(out, out)  # variant by variant
    assert sorted(set(compared.models["task"])) == ["hello [hidden_size=4]",
                                                    "hello [hidden_size=8]"]  # fmt: skip
    assert compared.regressions == []
    again = cli(*args)
    assert again.returncode == 0 and "2/2" in again.stdout + again.stderr  # nothing rerun
    assert [json.loads(p.read_text())["config_hash"] for p in sorted((out / "cells").glob("*"))
            ] == [r["config_hash"] for r in records]  # fmt: skip


def test_the_summary_gives_mean_interval_and_the_best_seed_per_variant():
    import pandas as pd

    from harness.report import TaskMeta
    from harness.report.sweep import summary, swept_names

    rows = [
        {"task": "t", "model": m, "seed": s, "status": "ok", "variant": f"hidden_size={h}",
         "sweep_hidden_size": h, "test_accuracy": acc}
        for m, h, s, acc in [("rnn", 8, 0, 0.5), ("rnn", 8, 1, 0.7), ("rnn", 16, 0, 0.9),
                             ("gru", 8, 0, 0.2), ("gru", 16, 0, 0.4), ("gru", 16, 1, 0.6)]
    ]  # fmt: skip
    cells = pd.DataFrame(rows)
    meta = TaskMeta(primary_metric="test_accuracy", higher_is_better=True, input_kind="tokens")
    table = summary(cells, "t", meta).set_index("model")
    assert list(table.columns) == ["hidden_size=8", "hidden_size=16"]  # by value, not text
    assert table.loc["rnn", "hidden_size=8"].startswith("0.6000 ±")
    assert "(max 0.7000, n=2)" in table.loc["rnn", "hidden_size=8"]
    assert table.loc["gru", "hidden_size=16"].endswith("(max 0.6000, n=2)")
    assert swept_names(cells, "t") == ["hidden_size"]
    lower = TaskMeta(primary_metric="test_accuracy", higher_is_better=False, input_kind="tokens")
    assert "(min 0.5000, n=2)" in summary(cells, "t", lower).set_index("model").loc[
        "rnn", "hidden_size=8"]  # fmt: skip
