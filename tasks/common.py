"""Small pieces the built-in task modules share (no entry point: it registers nothing)."""

from __future__ import annotations

from typing import Any


def require_positive(task: Any, *names: str) -> None:
    """A one-line ``ValueError`` for the first option in ``names`` below 1 (split sizes)."""
    for name in names:
        if getattr(task, name) < 1:
            raise ValueError(f"{name} must be at least 1, not {getattr(task, name)}")
