"""Shared fixtures: the installed plugins, and a way to run the real `harness` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugin_api.manager import load_plugins

HARNESS = [sys.executable, "-m", "harness"]


@pytest.fixture(autouse=True)
def signal_handlers_restored(request):
    """Put SIGINT and SIGTERM back as they were after each test. A handler left behind (a
    worker initializer ignoring SIGINT, Ray's driver set-up) leaks into every later test, and
    a subprocess started with SIGINT ignored ignores Ctrl-C for good (Python keeps SIG_IGN):
    the Ctrl-C test then sees a run that cannot be interrupted."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            with open(os.environ.get("HARNESS_SIGNAL_LEAKS", os.devnull), "a") as log:
                log.write(f"{request.node.nodeid}: {signal.Signals(sig).name}\n")
            signal.signal(sig, handler)


@pytest.fixture(scope="session")
def registry():
    return load_plugins()


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run `harness ARGS` in a subprocess, as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*HARNESS, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def cli():
    return run_cli


def invoke(*args: str):
    """Run ``harness ARGS`` in this process (click's runner), for quick CLI checks."""
    from click.testing import CliRunner

    from harness.cli import main

    return CliRunner().invoke(main, list(args))


def assert_one_line(result, message: str) -> None:
    """Bad input: exit status 2 and one ``error:`` line on stderr that says ``message``."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
