"""Plugin names become file names: one rule, applied by the plugin manager at registration and
by the conformance kit, keeps every path inside the run folder."""

from __future__ import annotations

import pytest

from harness import Model, hookimpl
from harness.errors import HarnessError
from harness.plugin_api.manager import load_plugins
from harness.plugin_api.names import checked_name, name_problem
from harness.testing.common import check_name

BAD = {
    "parent": "../escape",
    "slash": "a/b",
    "backslash": "a\\b",
    "dot": ".",
    "dotdot": "..",
    "hidden": ".hidden",
    "nul": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "space": "my model",
    "long": "m" * 300,
    "empty": "",
    "separator": "a__b",
    "windows device": "con",
    "trailing dot": "model.",
    "not a string": 3,
}
GOOD = ["my-gru", "scratch_rnn2", "lstm.v2", "A_b-1", "m" * 64]


def _build(shape, hidden_size, num_layers):
    raise NotImplementedError


def _registering(name):
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(Model(name=name, description="a model", build=_build))

    return Plugin()


@pytest.mark.parametrize("name", BAD.values(), ids=BAD.keys())
def test_a_bad_name_is_refused_at_registration_and_by_the_kit(name):
    registry = load_plugins(allow=[], extra=[("bad-name", _registering(name))])
    assert name not in registry.models
    [broken] = [b for b in registry.broken if b.origin.plugin == "bad-name"]
    assert "invalid name" in broken.error and name_problem(name) in broken.error
    with pytest.raises(AssertionError, match="name"):
        check_name("model", name)
    with pytest.raises(HarnessError, match="invalid model name"):
        checked_name("model", name)


@pytest.mark.parametrize("name", GOOD)
def test_a_plain_name_is_accepted_by_both(name):
    registry = load_plugins(allow=[], extra=[("good-name", _registering(name))])
    assert name in registry.models and not registry.broken
    check_name("model", name)
    assert checked_name("model", name) == name


def test_the_longest_names_still_make_a_cell_file_name_the_disk_accepts(tmp_path):
    longest = "m" * 64
    path = tmp_path / f"{longest}__{longest}__seed{2**64}.json"
    path.write_text("{}")
    assert path.read_text() == "{}"
