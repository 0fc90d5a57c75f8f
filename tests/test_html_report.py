"""report.html: one self-contained file per run, checked as text and in headless Chromium.

The run has a failed cell (a model that raises), a broken plugin (a module that raises on
import) and a task whose description holds a <script>: all three must show, the script as text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.distributions import env_with, make_distribution

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

TROUBLE = """
from harness import Model, hookimpl
from harness.tasks.hello import Hello

HARNESS_API = 1


class Evil(Hello):
    name = "evil"
    description = '<script>window.pwned = 1; console.error("injected")</script> & <b>bold</b>'


def build_raising(shape, hidden_size, num_layers):
    raise RuntimeError("kaboom <b>in build</b>")


@hookimpl
def register_tasks(register):
    register(Evil())


@hookimpl
def register_models(register):
    register(Model(name="raising", description="raises", build=build_raising))
"""


@pytest.fixture(scope="module")
def trouble_run(tmp_path_factory):
    from tests.conftest import run_cli

    root = make_distribution(
        tmp_path_factory.mktemp("dist"),
        "harness-trouble",
        "0.3.0",
        {"harness_trouble": TROUBLE, "harness_shattered": "raise ImportError('shattered')\n"},
        {"trouble": "harness_trouble", "shattered": "harness_shattered"},
    )
    out = tmp_path_factory.mktemp("run") / "grid"
    args = ["run", "-t", "hello", "-t", "evil", "-t", "sine", "-m", "rnn", "-m", "gru"]
    args += ["-m", "lstm", "-m", "raising", "--epochs", "3", "--workers", "1"]
    args += ["-o", "sine.train_curves=8", "-o", "sine.test_curves=8", "--out", str(out)]
    result = run_cli(*args, env=env_with(root))
    assert result.returncode == 1, result.stderr  # the raising model's cells failed
    return out


def test_report_is_one_self_contained_file(trouble_run):
    html = (trouble_run / "report.html").read_text()
    assert len(html.encode()) < 2_000_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "a network reference"
    assert "<img" not in html and "<link" not in html
    assert html.count("<svg") >= 3 * 2 + 1  # loss curves and metric bars per task, sine predictions
    assert html.count("<script>") == 1  # only the sorting script


def test_report_shows_failures_broken_plugins_and_escapes_plugin_text(trouble_run):
    html = (trouble_run / "report.html").read_text()
    assert "<script>window.pwned" not in html
    assert "&lt;script&gt;window.pwned" in html and "&amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "kaboom &lt;b&gt;in build&lt;/b&gt;" in html
    assert "shattered" in html and "harness-trouble 0.3.0" in html
    for section in ("Baselines and best achievable", "Recipe and hyperparameters", "python"):
        assert section in html


def test_report_html_command_rewrites_it(trouble_run, cli):
    (trouble_run / "report.html").unlink()
    result = cli("report", str(trouble_run), "--html")
    assert result.returncode == 0, result.stderr
    assert (trouble_run / "report.html").is_file()
    assert str(trouble_run / "report.html") in result.stdout


def _chromium_or_skip():
    """Playwright driving the system Chromium; skipped locally without it, a failure in CI."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[browser]')"
    if not CHROMIUM.is_file():
        reason = f"no {CHROMIUM} (apt-get install chromium chromium-driver)"
    if reason and os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    if reason:
        pytest.skip(reason)


def test_report_in_headless_chromium(trouble_run):
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    expected = pd.read_csv(trouble_run / "leaderboard.csv").groupby("task", sort=False).size()
    requests, errors = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto((trouble_run / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")

            assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
            assert errors == []
            assert page.evaluate("window.pwned") is None
            assert page.locator("table.leaderboard").count() == len(expected) == 3
            for task, models in expected.items():
                rows = page.locator(f'table.leaderboard[data-task="{task}"] tbody.models tr')
                assert rows.count() == models == 3

            board = page.locator('table.leaderboard[data-task="sine"]')
            names = board.locator("tbody.models tr td:nth-child(2)")
            before = names.all_inner_texts()
            header = board.locator("thead th", has_text=re.compile(r"^model$"))
            header.click()
            ascending = names.all_inner_texts()
            header.click()
            descending = names.all_inner_texts()
            assert ascending == sorted(before) and descending == sorted(before, reverse=True)
            assert before != ascending or before != descending  # a click reordered the rows
            assert board.locator("tbody.references tr").count() >= 1  # references stay put
        finally:
            browser.close()


def test_without_chromium_the_browser_test_skips_locally_and_fails_in_ci(monkeypatch, tmp_path):
    import tests.test_html_report as module

    monkeypatch.setattr(module, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        module._chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
        module._chromium_or_skip()


def test_report_fits_the_window_and_opens_with_a_verdict_per_task(trouble_run):
    """Read as a newcomer at 1,200 and 800 px: no page wider than the window, a verdict per
    task above the leaderboards, the failing model named in its tasks' caveats."""
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width in (1200, 800):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto((trouble_run / "report.html").resolve().as_uri())
                page.wait_for_load_state("load")
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                verdicts = page.locator("#in-short p.verdict")
                assert verdicts.count() == 3
                first = verdicts.first.bounding_box()
                assert first["y"] < page.locator("table.leaderboard").first.bounding_box()["y"]
                texts = verdicts.all_inner_texts()
                assert all("raising failed and is not ranked" in text for text in texts), texts
                page.close()
        finally:
            browser.close()
