"""Small helpers shared by the task and model checks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, NoReturn

from harness.plugin_api.names import name_problem


class ConformanceWarning(UserWarning):
    """Something a plugin written for an older minor API version may lack, which the harness
    copes without (pytest lists it under "warnings summary"); the same gap in a plugin written
    for this API version fails its check."""


def fail(subject: str, message: str) -> NoReturn:
    """Raise the kit's error: which task or model, and what is wrong with it."""
    raise AssertionError(f"{subject}: {message}")


def written_for(owner: Any, declared: Any = None) -> tuple[int, int]:
    """The plugin API version ``owner`` (a task or model) was written for, as (major, minor):
    ``declared`` (a ``HARNESS_API`` value, e.g. its plugin module's), else the ``HARNESS_API``
    of the module its class lives in, else the version this harness speaks."""
    import sys

    from harness.plugin_api.manager import parse_api
    from harness.version import PLUGIN_API_VERSION

    if declared is None:
        module = sys.modules.get(type(owner).__module__)
        declared = getattr(module, "HARNESS_API", None)
    current = parse_api(PLUGIN_API_VERSION)
    assert current is not None
    return parse_api(declared) or current if declared is not None else current


def fail_or_warn(subject: str, message: str, since: tuple[int, int], api: tuple[int, int]) -> None:
    """A contract point added in API ``since``: a failure for a plugin written for it or later,
    a :class:`ConformanceWarning` for one written before (minor versions only add)."""
    if api >= since:
        fail(subject, message)
    import warnings

    written = f"{api[0]}.{api[1]}"
    warnings.warn(
        f"{subject}: {message} (a warning for a plugin written for API {written}; a plugin "
        f"for API {since[0]}.{since[1]} or later fails this check)",
        ConformanceWarning,
        stacklevel=3,
    )


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
