"""The config hash names the plugin distributions behind a cell: upgrading a plugin package
reruns exactly the cells it serves, and every other finished cell is reused."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from tests.distributions import env_with, make_distribution

TINY = """
from harness import Model, hookimpl


def build(shape, hidden_size, num_layers):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(shape.input_size, 8, batch_first=True)
            self.head = torch.nn.Linear(8, shape.output_size)

        def forward(self, inputs, state=None):
            out, state = self.rnn(inputs, state)
            return self.head(out), state

    return Tiny()


@hookimpl
def register_models(register):
    register(Model(name="tiny", description="an 8-unit RNN", build=build, input_kinds={"values"}))
"""


def install(root, version):
    shutil.rmtree(root, ignore_errors=True)
    return env_with(
        make_distribution(
            root, "harness-tiny", version, {"harness_tiny": TINY}, {"tiny": "harness_tiny"}
        )
    )


def test_an_upgraded_plugin_reruns_only_its_cells(cli, tmp_path):
    out, site = tmp_path / "run", tmp_path / "site"
    grid = ["run", "-t", "sine", "-m", "rnn", "-m", "tiny", "--epochs", "2", "--out", str(out)]
    grid += ["-o", "sine.train_curves=8"]
    first = cli(*grid, "--workers", "1", env=install(site, "0.1.0"))
    assert first.returncode == 0, first.stderr
    before = {p.name: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert before["sine__tiny__seed0.json"]["plugin_model"] == "harness-tiny 0.1.0"
    assert before["sine__rnn__seed0.json"]["plugin_model"].startswith("harness ")

    again = cli(*grid, "--workers", "1", env=install(site, "0.2.0"))
    assert again.returncode == 0, again.stderr
    assert "1 cell(s)" in again.stdout and "rerunning" in again.stdout
    after = {p.name: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert after["sine__rnn__seed0.json"] == before["sine__rnn__seed0.json"]  # reused as is
    tiny = after["sine__tiny__seed0.json"]
    assert tiny["plugin_model"] == "harness-tiny 0.2.0"
    assert tiny["config_hash"] != before["sine__tiny__seed0.json"]["config_hash"]
    cells = pd.read_csv(out / "cells.csv").set_index("model")
    assert cells.loc["tiny", "plugin_model"] == "harness-tiny 0.2.0"
