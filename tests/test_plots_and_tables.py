"""Plots: one colour per model across a run's plots, references off the scale annotated;
tables: one number notation per column."""

from __future__ import annotations

import matplotlib
import pandas as pd
from matplotlib.legend import Legend

from harness.report import Reference, TaskMeta, plots
from harness.report.formatting import one_notation

matplotlib.use("Agg")

META = TaskMeta(
    primary_metric="test_perplexity",
    higher_is_better=False,
    input_kind="tokens",
    optimum={"test_perplexity": 1.3},
    baselines=[Reference("uniform", "guess", {"test_perplexity": 20.0, "test_loss": 3.0})],
)


def board(models: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"model": models, "test_perplexity": [1.4 + 0.01 * i for i in range(len(models))]}
    )


def test_a_model_keeps_its_colour_whatever_else_is_in_the_plot():
    everything = plots.model_colours(["rnn", "gru", "lstm"])
    assert plots.model_colours(["lstm", "rnn", "gru"]) == everything
    assert len(set(everything.values())) == 3
    fig = plots.metric_dots(board(["rnn", "gru"]), "t", META, everything)
    dots = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    colours = sorted(matplotlib.colors.to_hex(line.get_color()) for line in dots)
    assert colours == sorted([everything["rnn"], everything["gru"]])
    curves = pd.DataFrame(
        {"task": "t", "model": ["gru", "gru"], "seed": 0, "epoch": [1, 2],
         "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}
    )  # fmt: skip
    fig = plots.loss_curves(curves, "t", META, everything)
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].lines}
    assert everything["gru"] in colours and everything["rnn"] not in colours


def test_a_reference_far_off_the_scale_is_annotated_not_squashing_the_dots():
    fig = plots.metric_dots(board(["rnn", "gru"]), "t", META)
    ax = fig.axes[0]
    (legend,) = fig.findobj(Legend)
    labels = [t.get_text() for t in legend.get_texts()]
    assert any("uniform: 20" in t and "off scale" in t for t in labels), labels
    assert ax.get_xlim()[1] < 5  # the axis stays on the models' scale
    assert "off scale" in ax.get_xlabel() and "uniform 20" in ax.get_xlabel()  # at the edge
    lines = ax.get_legend_handles_labels()[1]
    assert any("best achievable" in label for label in lines)  # near the dots: a line


def test_metric_figures_are_one_per_row_with_an_axis_near_the_data():
    meta = TaskMeta("test_accuracy", True, input_kind="tokens")
    frame = pd.DataFrame(
        {"model": ["a", "b"], "test_accuracy": [0.9031, 0.8980], "test_loss": [0.52, 0.57],
         "train_throughput": [1e5, 2e5]}
    )  # fmt: skip
    fig = plots.metric_dots(frame, "t", meta)
    fig.canvas.draw()
    boxes = [ax.get_window_extent() for ax in fig.axes]
    assert len(boxes) == 3 and all(b.width > 0.6 * fig.bbox.width for b in boxes)  # full rows
    assert all(upper.y0 > lower.y1 for upper, lower in zip(boxes, boxes[1:]))  # stacked
    low, high = fig.axes[0].get_xlim()
    assert low > 0.85 and high - low < 0.05  # a 0.005 difference spans the axis, not 0 to 1
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert min(sizes) >= 8
    plots.close(fig)


def test_legends_cover_no_data_and_stay_inside_the_figure():
    long_names = ["embedding-rnn", "gru", "lstm", "a-rather-long-model-name"]
    curves = pd.DataFrame(
        {"task": "t", "model": [m for m in long_names for _ in (1, 2)], "seed": 0,
         "epoch": [1, 2] * 4, "train_loss": 1.0, "val_loss": 0.9}
    )  # fmt: skip
    samples = {"truth": [0.0, 1.0, 0.5], "teacher_forced": [0.9, 0.4], "rollout": [0.6]}
    figures = [
        plots.metric_dots(board(long_names), "t", META),
        plots.loss_curves(curves, "t", META),
        plots.predictions([{"task": "t", "model": "gru", "samples": samples}], "t"),
    ]
    for fig in figures:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = fig.findobj(Legend)
        assert legends
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, box
            assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1, box
            for ax in fig.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), (legend, ax)
        plots.close(fig)


def test_no_figure_without_a_metric_to_draw():
    nothing = pd.DataFrame({"model": ["rnn"], "test_loss": [float("nan")]})
    assert plots.metric_dots(nothing, "t", META) is None


def test_svg_is_inline_and_keeps_text_as_text():
    svg = plots.to_svg(plots.metric_dots(board(["rnn"]), "t", META))
    assert svg.startswith("<svg") and "<text" in svg and "<?xml" not in svg


def test_one_notation_per_column():
    table = pd.DataFrame(
        {
            "rank": ["1", "2=", "3"],
            "mse": ["1.20e-03 ± 1.00e-04", "0.5000", "0.0200"],
            "speed": ["59.4718", "1,350.0", ""],
            "label": ["ohlol", "0.5", "x"],
            "seed": ["0", "0", "0"],
            "zero": ["0.0000", "0.0000", "0.0000"],
        }
    )
    shown = one_notation(table)
    assert list(shown["seed"]) == ["0", "0", "0"] and list(shown["zero"]) == ["0.0000"] * 3
    assert list(shown["mse"]) == ["1.20e-03 ± 1.00e-04", "5.00e-01", "2.00e-02"]
    assert list(shown["speed"]) == ["59.5", "1,350.0", ""]
    assert list(shown["rank"]) == ["1", "2=", "3"] and list(shown["label"]) == ["ohlol", "0.5", "x"]


def test_leaderboard_md_uses_one_notation_per_column_like_the_other_views():
    from harness.report.ranking import markdown

    cells = pd.DataFrame(
        {"task": "t", "model": ["a", "b"], "seed": 0, "status": "ok",
         "test_perplexity": [1.5, 2.5], "test_loss": [0.005, 0.5]}
    )  # fmt: skip
    rows = [line.split("|") for line in markdown(cells, {"t": META}).splitlines()]
    header = next(row for row in rows if "model" in [c.strip() for c in row])
    column = [c.strip() for c in header].index("test_loss")
    loss = {row[2].strip(): row[column].strip() for row in rows if len(row) == len(header)}
    assert loss["a"] == "5.00e-03" and loss["b"] == "5.00e-01", loss  # b not as 0.5000
    assert loss["(uniform)"] == "3.00e+00"
