"""pytest plugin (``pytest11`` entry point): gives plugin test suites the harness fixtures.

Installed with harness, so any test suite in the same environment gets them without a
conftest. It is loaded by every pytest run there, so it imports nothing heavy and loads no
plugins until a test asks for a fixture. Disable it with ``pytest -p no:harness``.
"""

from __future__ import annotations

import pytest


def pytest_report_header(config: pytest.Config) -> str:
    from harness.version import PLUGIN_API_VERSION, __version__

    return f"harness {__version__}, plugin API {PLUGIN_API_VERSION}"


@pytest.fixture(scope="session")
def harness_registry():
    """Every installed plugin's tasks and models (HARNESS_PLUGINS and friends apply)."""
    from harness.plugin_api.manager import load_plugins

    return load_plugins()


@pytest.fixture
def harness_check_task():
    """:func:`harness.testing.check_task`, for tests that prefer fixtures to imports."""
    from harness.testing import check_task

    return check_task


@pytest.fixture
def harness_check_model():
    """:func:`harness.testing.check_model`, for tests that prefer fixtures to imports."""
    from harness.testing import check_model

    return check_model
