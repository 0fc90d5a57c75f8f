"""The report as a newcomer reads it (issue #17): a verdict per task at the top, the test
figures first with the rest behind toggles, one notation for a setting in every table, a loss
far above every baseline read as diverged, not-applicable cells apart from failures, gaps
measured against the optimum a baseline realizes, and, in headless Chromium, a page no wider
than the window at 1,200 and 800 px with the model column pinned and legible figures.

The run folder here is written by hand (no training), so every case is in one small run.
"""

from __future__ import annotations

import math
import os
import random
import re
from pathlib import Path

import pandas as pd
import pytest

from harness.report import Reference, TaskMeta
from harness.report.ranking import (
    DIVERGE_FACTOR,
    aggregate,
    column_group,
    display_table,
    mark_diverged,
    markdown,
    optimum_notes,
    split_unfinished,
)
from harness.report.verdict import verdict

COUNT = TaskMeta(
    primary_metric="test_accuracy",
    higher_is_better=True,
    description="next-token prediction on runs of consecutive integers",
    input_kind="tokens",
    recipe={"lr": 0.005, "weight_decay": 0.0, "hidden_size": 128, "epochs": 3},
    optimum={"test_accuracy": 0.9041, "test_perplexity": 1.3982, "test_loss": 0.3352},
    baselines=[
        Reference(
            "bayes-filter",
            "the Bayes predictor, realized on the test windows",
            {"test_accuracy": 0.9082, "test_perplexity": 1.3937, "test_loss": 0.3319},
        ),
        Reference("uniform", "guess", {"test_accuracy": 0.05, "test_perplexity": 20.0}),
        Reference("plus-one", "the current number + 1", {"test_accuracy": 0.9031}),
    ],
    metric_descriptions={"probe": "a greedy continuation", "probe_ok": "whether it is right"},
    metric_directions={"probe_ok": "higher"},
)
WAVE = TaskMeta(
    primary_metric="test_loss",
    higher_is_better=False,
    description="next-value regression on a sine",
    input_kind="values",
    recipe={"lr": 0.02, "weight_decay": 0.0, "hidden_size": 16, "epochs": 3},
    baselines=[
        Reference("zero", "always 0", {"test_loss": 0.4974}),
        Reference("persistence", "next = current", {"test_loss": 0.0209}),
    ],
)


def cells(task: str, figures: dict[str, list[float]], metric: str, **extra) -> pd.DataFrame:
    """One row per model and seed of ``task``: ``figures`` maps model -> per-seed values."""
    rows = [
        {"task": task, "model": model, "seed": seed, "status": "ok", metric: value, **extra}
        for model, values in figures.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


# -- the verdict ----------------------------------------------------------------------------


def test_verdict_with_one_seed_orders_by_value_names_ties_and_says_it_is_one_seed():
    meta = TaskMeta(
        "test_accuracy", True, baselines=[Reference("chance", "", {"test_accuracy": 0.5})]
    )
    frame = cells("t", {"a": [0.9], "b": [0.9], "c": [0.8]}, "test_accuracy")
    said = verdict("t", meta, aggregate(frame, "t", meta), frame)
    assert said.sentence == (
        "t, by test_accuracy (higher is better, one seed): a and b tie for best (0.9000), "
        "then c (0.8000); every model beats the chance baseline (0.5000)."
    )
    assert said.caveats[0].startswith("one seed: ranks follow values only")


def test_verdict_with_seeds_says_which_models_cannot_be_told_apart():
    meta = TaskMeta("test_loss", False, baselines=[Reference("zero", "", {"test_loss": 0.5})])
    frame = cells(
        "t", {"a": [0.10, 0.12, 0.14], "b": [0.11, 0.13, 0.15], "c": [0.30, 0.31, 0.32]},
        "test_loss",
    )  # fmt: skip
    said = verdict("t", meta, aggregate(frame, "t", meta), frame)
    assert said.sentence.startswith(
        "t, by test_loss (lower is better, 3 seeds): a and b share the top rank (not "
        "separable), then c (0.3100 ± 0.0248)"
    ), said.sentence
    assert "every model beats the zero baseline" in said.sentence
    assert not any(c.startswith("one seed") for c in said.caveats)


def test_verdict_caveats_unstable_speed_sizes_and_cells_that_are_not_ranked():
    meta = TaskMeta("test_loss", False)
    frame = cells("t", {"a": [0.1], "b": [0.2]}, "test_loss", train_throughput=1000.0)
    frame["params"] = [100, 1000]
    broken = pd.DataFrame(
        [{"task": "t", "model": "c", "seed": 0, "status": "diverged"},
         {"task": "t", "model": "d", "seed": 0, "status": "not-applicable"},
         {"task": "other", "model": "e", "seed": 0, "status": "failed"}]
    )  # fmt: skip
    every = pd.concat([frame, broken], ignore_index=True)
    timing = {"unstable": True, "unstable_reason": "load 3.2 above 2 cores"}
    said = verdict("t", meta, aggregate(every, "t", meta), every, timing)
    text = said.text
    assert "speed marked unstable (load 3.2 above 2 cores)" in text
    assert "more than 10% from the median size" in text
    assert "c diverged and is not ranked" in text and "d does not apply" in text
    assert "failed" not in text  # another task's failure is that task's caveat
    unspeedy = frame.drop(columns="train_throughput")
    calm = verdict("t", meta, aggregate(unspeedy, "t", meta), unspeedy, timing)
    assert "unstable" not in calm.text  # no speed shown, no speed caveat


# -- diverged, not ranked -----------------------------------------------------------------


def test_a_loss_far_above_every_baseline_is_diverged_and_not_ranked():
    frame = cells("wave", {"gru": [0.02], "wild": [1e11], "poor": [0.45]}, "test_loss")
    frame["error"] = None
    marked = mark_diverged(frame, {"wave": WAVE})
    status = dict(zip(marked["model"], marked["status"]))
    assert status == {"gru": "ok", "wild": "diverged", "poor": "ok"}
    error = marked.loc[marked["model"] == "wild", "error"].iloc[0]
    assert f"{DIVERGE_FACTOR:,.0f}x the worst baseline's (zero: 0.4974)" in error
    assert list(aggregate(marked, "wave", WAVE)["model"]) == ["gru", "poor"]
    assert frame["status"].eq("ok").all()  # the input is left as it was
    just_below = cells("wave", {"big": [0.4974 * DIVERGE_FACTOR * 0.99]}, "test_loss")
    assert mark_diverged(just_below, {"wave": WAVE})["status"].eq("ok").all()


# -- references -----------------------------------------------------------------------------


def test_gaps_are_measured_against_the_optimum_a_baseline_realizes_and_it_is_said():
    frame = cells("count", {"a": [0.90], "b": [0.88]}, "test_accuracy")
    board = aggregate(frame, "count", COUNT)
    assert board.loc[0, "gap_to_best_test_accuracy"] == pytest.approx(0.9082 - 0.90)
    shown = display_table(board, COUNT)
    labels = list(shown["model"])
    assert "(best achievable, expected)" in labels and "(bayes-filter)" in labels
    (note,) = optimum_notes(COUNT)
    assert "bayes-filter scores beyond the expected best achievable" in note
    assert "test_accuracy 0.9082 vs 0.9041" in note and "measured against it" in note
    said = verdict("count", COUNT, board, frame)
    assert "realized by bayes-filter on this test set; expected 0.9041" in said.sentence
    assert "the best baseline, plus-one" in said.sentence  # not the realized optimum


# -- the leaderboard's columns --------------------------------------------------------------


def test_speed_columns_appear_only_where_timed_and_sit_in_the_speed_group():
    frame = cells("count", {"a": [0.9], "b": [0.8]}, "test_accuracy")
    untimed = display_table(aggregate(frame, "count", COUNT), COUNT)
    assert not [c for c in untimed.columns if column_group(c, COUNT) == "speed"]
    timed_frame = frame.assign(
        train_throughput=[1000.0, 2000.0], train_speed_vs_ref=[1.0, 2.0], speed_unstable=True
    )
    timed = display_table(aggregate(timed_frame, "count", COUNT), COUNT)
    for column in ("train_throughput", "train x reference", "speed_unstable"):
        assert column in timed and column_group(column, COUNT) == "speed"
    named = timed_frame.assign(speed_reference="rnn")
    shown = display_table(aggregate(named, "count", COUNT), COUNT)
    assert "train x rnn" in shown  # the reference is named in the column
    assert "train x rnn" in display_table(aggregate(named, "count", COUNT), COUNT, compact=True)
    assert "infer_throughput" not in timed  # no empty column for what was not timed
    groups = {column_group(c, COUNT) for c in timed.columns}
    assert column_group("test_accuracy", COUNT) == column_group("model", COUNT) == "test"
    assert column_group("val_accuracy", COUNT) == "fit" and "details" in groups


def test_the_terminal_leaderboard_shows_perplexity_for_a_token_task():
    frame = cells("count", {"a": [0.9]}, "test_accuracy", test_perplexity=1.5, test_loss=0.4)
    compact = display_table(aggregate(frame, "count", COUNT), COUNT, compact=True)
    assert "test_perplexity" in compact and "test_loss" not in compact
    values = cells("wave", {"a": [0.1]}, "test_loss", test_perplexity=1.1)
    assert "test_perplexity" not in display_table(aggregate(values, "wave", WAVE), WAVE, True)


def test_not_applicable_cells_are_listed_apart_from_failures():
    frame = pd.DataFrame(
        [{"task": "t", "model": "a", "seed": 0, "status": "ok", "error": None},
         {"task": "t", "model": "b", "seed": 0, "status": "failed", "error": "boom"},
         {"task": "t", "model": "c", "seed": 0, "status": "not-applicable", "error": "tokens"},
         {"task": "t", "model": "c", "seed": 1, "status": "not-applicable", "error": "tokens"}]
    )  # fmt: skip
    broken, skipped = split_unfinished(frame)
    assert list(broken["model"]) == ["b"] and set(skipped["model"]) == {"c"}
    text = markdown(frame.assign(test_loss=0.1), {"t": WAVE})
    failures, _, rest = text.partition("## Cells that did not finish")[2].partition(
        "## Not applicable (never run)"
    )
    assert "boom" in failures and "not-applicable" not in failures
    assert rest.count("| c ") == 1  # one line per pair, not per seed


# -- a whole report ---------------------------------------------------------------------------

LONG = "a-rather-long-model-name"
COUNT_MODELS = {LONG: 0.890, "gru": 0.899, "lstm": 0.897, "rnn": 0.901, "transformer": 0.8985}
WAVE_MODELS = {"gru": 0.0193, "rnn": 0.0484, "lstm": 0.037, "wild": 1.5e11}
TIMING = {"unstable": True, "unstable_reason": "the 1-minute load 3.2 is above the 2 cores",
          "references": {"count": "rnn"}}  # fmt: skip


def _record(task: str, model: str, seed: int, **figures) -> dict:
    curve = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5 + e / 10}
        for e in (1, 2, 3)
    ]
    recipe = COUNT.recipe if task == "count" else WAVE.recipe
    return {
        "cell_id": f"{task}__{model}__seed{seed}", "task": task, "model": model, "seed": seed,
        "status": "ok", "error": None, "curve": curve, "best_epoch": 3, "epochs_run": 3,
        "batch_size": 50, "num_layers": 1, "optimizer": "adam", "params": 21780,
        "train_seconds": 1.5, **recipe, **figures,
    }  # fmt: skip


@pytest.fixture(scope="module")
def readable_run(tmp_path_factory):
    from harness.report.build import rebuild
    from harness.storage.run_folder import RunFolder

    folder = RunFolder.create(tmp_path_factory.mktemp("readable") / "run")
    rng = random.Random(0)
    folder.write_info(
        {
            "status": "finished", "started": "2026-01-01T00:00:00",
            "tasks": {"count": COUNT.to_dict(), "wave": WAVE.to_dict()},
            "resolved": {"models": [*COUNT_MODELS, "wild", "embedding-rnn", "broken"]},
            "config": {"lr": None, "seeds": 3}, "timing": TIMING,
        }
    )  # fmt: skip
    for model, accuracy in COUNT_MODELS.items():
        speed = rng.uniform(2e4, 1e5)
        for seed in range(3):
            acc = accuracy + rng.uniform(-0.002, 0.002)
            folder.write_record(
                _record(
                    "count", model, seed, test_accuracy=acc, val_accuracy=acc - 0.001,
                    train_accuracy=acc + 0.004, test_perplexity=1.7 - acc / 10,
                    val_perplexity=1.71, train_perplexity=1.5, test_loss=0.55 - acc / 10,
                    val_loss=0.56, train_loss=0.44, task_probe="2 3 4 5 6 7 8 9",
                    task_probe_ok=True, task_first_exact_epoch=2.0,
                    train_throughput=speed, train_throughput_q1=0.95 * speed,
                    train_throughput_q3=1.05 * speed, infer_throughput=3 * speed,
                    infer_throughput_q1=2.9 * speed, infer_throughput_q3=3.1 * speed,
                    train_ms_per_batch=50e3 / speed, infer_ms_per_batch=17e3 / speed,
                    train_speed_vs_ref=speed / 6e4, train_speed_vs_ref_q1=speed / 6.2e4,
                    train_speed_vs_ref_q3=speed / 5.8e4, speed_reference="rnn",
                    speed_unstable=True,
                )
            )  # fmt: skip
    for model, loss in WAVE_MODELS.items():
        folder.write_record(
            _record("wave", model, 0, test_loss=loss, val_loss=loss, train_loss=loss)
        )
    folder.write_record(
        {**_record("wave", "embedding-rnn", 0), "status": "not-applicable",
         "error": "embedding-rnn takes tokens inputs; the task's inputs are values", "curve": []}
    )  # fmt: skip
    folder.write_record(
        {**_record("wave", "broken", 0), "status": "failed", "error": "kaboom", "curve": []}
    )
    rebuild(folder.path)
    return folder.path


def test_the_report_opens_with_a_verdict_per_task(readable_run):
    html = (readable_run / "report.html").read_text()
    top = html.index('id="in-short"')
    assert top < html.index("<table")  # before any table
    verdicts = re.findall(r'<p class="verdict" data-task="(\w+)">(.*?)</p>', html, re.S)
    assert [task for task, _ in verdicts] == ["count", "wave"]
    count, wave = (text for _, text in verdicts)
    assert "by test_accuracy (higher is better, 3 seeds)" in count
    assert "speed marked unstable (the 1-minute load 3.2 is above the 2 cores)" in count
    assert "realized by bayes-filter" in count
    assert "wild diverged and is not ranked" in wave and "broken failed" in wave
    assert "embedding-rnn does not apply" in wave
    md = (readable_run / "leaderboard.md").read_text()
    assert md.index("## In short") < md.index("## count")


def test_the_report_shows_diverged_and_not_applicable_cells_apart(readable_run):
    html = (readable_run / "report.html").read_text()
    failed = html[html.index('id="failed"') : html.index('id="not-applicable"')]
    skipped = html[html.index('id="not-applicable"') : html.index('id="environment"')]
    assert "wild" in failed and "diverged" in failed and "kaboom" in failed
    assert "embedding-rnn" not in failed and "embedding-rnn" in skipped
    board = html[html.index('data-task="wave" data-models') :]
    board = board[: board.index("</table>")]
    assert "wild" not in board  # not ranked
    cells = pd.read_csv(readable_run / "cells.csv").set_index("model")
    assert cells.loc["wild", "status"] == "diverged"


def test_a_setting_has_one_notation_in_every_table(readable_run):
    html = (readable_run / "report.html").read_text()
    md = (readable_run / "leaderboard.md").read_text()
    for text in (html, md):
        assert "5.00e-03" not in text and "5e-03" not in text
    assert "lr 0.005, hidden 128, wd 0" in html and "lr 0.005, hidden 128, wd 0" in md
    chosen = html[html.index('class="hyperparameters"') :]
    chosen = chosen[: chosen.index("</table>")]
    headings = re.findall(r"<th>(\w+)</th>", chosen)
    row = re.findall(r"<td>([^<]*)</td>", chosen)[: len(headings)]
    values = dict(zip(headings, row))
    assert values["lr"] == "0.005" and values["weight_decay"] == "0"
    recipe = re.search(r'<th scope="row">lr</th><td>([^<]*)</td>', html)
    assert recipe and recipe.group(1) == "0.005"


def test_speed_notes_name_the_reference_and_why_speed_is_unstable(readable_run):
    html = (readable_run / "report.html").read_text()
    notes = re.search(r'<p class="speed-notes">(.*?)</p>', html, re.S)
    assert notes and "multiple of rnn&#39;s" in notes.group(1)
    assert "the 1-minute load 3.2 is above the 2 cores" in notes.group(1)
    wave = html[html.index('id="task-1-wave"') :]
    wave = wave[: wave.index("</section>")]
    assert "timing phase" not in wave and "nstable" not in wave  # nothing timed there
    assert "_throughput" not in wave  # and no empty speed columns


# -- in a browser ---------------------------------------------------------------------------


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def _browser():
    """Playwright on the system Chromium; skipped without them, a failure in CI (as in
    ``test_html_report``, whose module this one does not import: it needs the repository
    root on ``sys.path``)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[browser]')"
    if not CHROMIUM.is_file():
        reason = f"no {CHROMIUM} (apt-get install chromium chromium-driver)"
    if reason and os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    if reason:
        pytest.skip(reason)
    return sync_playwright, CHROMIUM, CHROMIUM_ARGS


@pytest.mark.parametrize("width", [1200, 800])
def test_in_chromium_the_page_fits_the_window_and_the_model_column_stays(readable_run, width):
    sync_playwright, chromium, args = _browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=args)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto((readable_run / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("document.documentElement.scrollWidth") <= width

            board = page.locator("div.board").first
            val = board.locator("th.g-fit").first
            assert not val.is_visible()  # validation and training behind their toggle
            assert board.locator("th", has_text=re.compile("^test_accuracy$")).is_visible()
            board.locator("label", has_text="validation and training").click()
            board.locator("label", has_text="speed").click()
            assert val.is_visible() and board.locator("th.g-speed").first.is_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= width

            wrap = board.locator("div.board-wrap")
            model = board.locator("tbody.models td.c-model").first
            before = model.bounding_box()
            wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
            assert wrap.evaluate("el => el.scrollLeft") > 0  # the table does scroll sideways
            after = model.bounding_box()
            assert after["x"] == pytest.approx(before["x"], abs=1)  # pinned
            assert model.inner_text() == board.locator("tbody.models td.c-model").first.inner_text()

            smallest = page.evaluate(
                """() => Math.min(...[...document.querySelectorAll('figure svg')].flatMap(svg => {
                    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
                    return [...svg.querySelectorAll('text')].map(
                        t => parseFloat(getComputedStyle(t).fontSize) * scale);
                }))"""
            )
            assert math.isfinite(smallest) and smallest >= (9 if width == 1200 else 8)
        finally:
            browser.close()
