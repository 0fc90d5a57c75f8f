"""Small helpers shared by the task and model checks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, NoReturn

from harness.plugin_api.names import name_problem


def fail(subject: str, message: str) -> NoReturn:
    """Raise the kit's error: which task or model, and what is wrong with it."""
    raise AssertionError(f"{subject}: {message}")


def check_name(subject: str, name: Any) -> None:
    """The very rule the plugin manager applies at registration (``harness.plugin_api.names``)."""
    problem = name_problem(name)
    if problem is not None:
        fail(subject, problem)


def check_text(subject: str, what: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        fail(subject, f"{what} must be a non-empty string, not {value!r}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_json(subject: str, what: str, value: Any) -> None:
    """Results are written as JSON: a value that json cannot write fails the run late, so here."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        fail(
            subject,
            f"{what} is not JSON-serialisable ({exc}); use numbers, strings, booleans, lists",
        )


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: the kit's tensors are tiny, and on a busy machine extra threads
    only wait for each other (a check took 10 s on two threads and 2 s on one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
