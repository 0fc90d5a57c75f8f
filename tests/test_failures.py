"""A model that raises and one that diverges, installed as a real plugin, inside a full grid:
each is recorded with its error, every other cell runs, and the exit status says so."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.distributions import env_with, make_distribution

TROUBLE = """
from harness import Model, hookimpl

HARNESS_API = 1


def build_raising(shape, hidden_size, num_layers):
    import torch

    class Raising(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, inputs, state=None):
            raise RuntimeError("kaboom in forward")

    return Raising()


def build_diverging(shape, hidden_size, num_layers):
    import torch

    class Diverging(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, shape.output_size)
            self.calls = 0

        def forward(self, inputs, state=None):
            self.calls += 1
            x = torch.ones(*inputs.shape[:2], 1)
            out = self.head(x)
            if self.calls > 3:
                out = out * float("inf")
            return out, state

    return Diverging()


@hookimpl
def register_models(register):
    register(Model(name="raising", description="raises in forward", build=build_raising))
    register(Model(name="diverging", description="loss becomes inf", build=build_diverging))
"""


@pytest.fixture(scope="module")
def trouble_env(tmp_path_factory):
    root = make_distribution(
        tmp_path_factory.mktemp("dist"),
        "harness-trouble",
        "0.3.0",
        {"harness_trouble": TROUBLE},
        {"trouble": "harness_trouble"},
    )
    return env_with(root)


def test_raising_and_diverging_cells_are_isolated(cli, tmp_path, trouble_env):
    out = tmp_path / "grid"
    result = cli(
        "run",
        "-t",
        "hello",
        "-t",
        "sine",
        "-m",
        "raising",
        "-m",
        "diverging",
        "-m",
        "rnn",
        "--epochs",
        "6",
        "-o",
        "sine.train_curves=8",
        "--out",
        str(out),
        env=trouble_env,
    )
    assert result.returncode == 1, result.stderr
    cells = pd.read_csv(out / "cells.csv").set_index(["task", "model"])
    assert set(cells["status"]) == {"ok", "failed", "diverged"}
    for task in ("hello", "sine"):
        assert cells.loc[(task, "rnn"), "status"] == "ok"
        assert cells.loc[(task, "raising"), "status"] == "failed"
        assert "kaboom in forward" in cells.loc[(task, "raising"), "error"]
        error = cells.loc[(task, "raising"), "error"]
        assert "[model plugin trouble (harness-trouble 0.3.0)]" in error
        assert cells.loc[(task, "diverging"), "status"] == "diverged"
        assert "training loss became" in cells.loc[(task, "diverging"), "error"]
    assert "4 cell(s) did not finish" in result.stdout
    assert "hello×raising#0 (failed)" in result.stdout
    leaderboard = (out / "leaderboard.md").read_text()
    assert "Cells that did not finish" in leaderboard and "kaboom" in leaderboard
    curves = pd.read_csv(out / "curves.csv")
    diverged = curves[curves["model"] == "diverging"]
    assert len(diverged) >= 1 and diverged["epoch"].max() < 6  # stopped early
