"""Plugin text in the CSV and markdown files: no formulas for spreadsheets, no broken tables."""

from __future__ import annotations

import io

import pandas as pd

from harness.storage.escape import csv_cell, csv_safe, md_cell, md_code, md_text


def test_csv_formulas_are_defused_and_numbers_kept():
    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for start in "=+-@\t\r":
        assert csv_cell(start + "cmd") == "'" + start + "cmd"
    assert csv_cell("-0.5") == "-0.5" and csv_cell("+3") == "+3"
    assert csv_cell(-0.5) == -0.5 and csv_cell("gru") == "gru" and csv_cell(None) is None


def test_csv_safe_frame_keeps_numeric_columns():
    frame = pd.DataFrame({"model": ["=1+1", "gru"], "loss": [-1.0, 2.0], "=x": ["a", "b"]})
    text = csv_safe(frame).to_csv(index=False)
    back = pd.read_csv(io.StringIO(text))
    assert list(back.columns) == ["model", "loss", "'=x"]
    assert back["model"].tolist() == ["'=1+1", "gru"] and back["loss"].tolist() == [-1.0, 2.0]
    assert frame["model"].tolist() == ["=1+1", "gru"]  # the caller's frame is untouched


def test_markdown_cell_cannot_split_a_table():
    two_lines = "two\nlines"
    table = f"| a | b |\n|---|---|\n| {md_cell('x | y')} | {md_cell(two_lines)} |"
    rows = table.splitlines()
    assert len(rows) == 3
    assert rows[2].replace("\\|", "").count("|") == 3


def test_markdown_text_cannot_start_a_block_or_inject_html():
    line = md_text("# Heading\n\n<script>alert(1)</script> *bold* [link](x)")
    assert "\n" not in line and line.startswith("\\#")
    assert "<" not in line.replace("\\<", "") and "\\*bold\\*" in line


def test_markdown_code_survives_backticks():
    assert md_code("exact") == "`exact`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x") == "`` `x ``"


def test_leaderboard_and_tables_escape_plugin_text(tmp_path):
    from harness.report.meta import Reference, TaskMeta
    from harness.report.ranking import markdown
    from harness.report.tables import cells_frame
    from harness.storage.files import write_frame

    meta = TaskMeta(
        primary_metric="test_loss",
        higher_is_better=False,
        description="copies | things\n# not a heading",
        metric_descriptions={"exact": "x | y\n- not a list"},
        baselines=[Reference("=cmd", "desc | pipe", {})],
    )
    error = '=HYPERLINK("http://x") | boom\nsecond line'
    record = {"cell_id": "t__m__seed0", "task": "t", "model": "m", "seed": 0}
    cells = cells_frame([{**record, "status": "failed", "error": error}])
    text = markdown(cells, {"t": meta})
    lines = text.splitlines()
    assert not any(line.startswith(("# not", "- not")) for line in lines)
    assert "copies \\| things \\# not a heading" in text
    failed = [line for line in lines if line.startswith("| t ")]
    assert len(failed) == 1 and failed[0].replace("\\|", "").count("|") == 6
    write_frame(cells, tmp_path / "cells")
    back = pd.read_csv(tmp_path / "cells.csv")
    assert back["error"][0].startswith("'=HYPERLINK")
    assert pd.read_parquet(tmp_path / "cells.parquet")["error"][0] == error  # data untouched
