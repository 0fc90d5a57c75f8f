"""The hooks a plugin may implement: the whole plugin contract.

A plugin is a module named by an entry point in the ``harness`` group. It implements any of
these hooks with ``@harness.hookimpl`` and may declare ``HARNESS_API = "1.1"`` (the contract
version it was written for). Each hook receives a ``register`` callable; call it once per thing
you offer::

    from harness.plugin_api.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register(Model(name="my-rnn", description="...", build=build))
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tasks(register: Callable[[object], None]) -> None:
    """Register tasks: call ``register(task)`` with a :class:`harness.Task` instance for each."""


@hookspec
def register_models(register: Callable[[object], None]) -> None:
    """Register models: call ``register(model)`` with a :class:`harness.Model` for each."""


@hookspec
def register_loggers(register: Callable[[object], None]) -> None:
    """Register trackers (API 1.2): call ``register(logger)`` with a
    :class:`harness.loggers.contract.Logger` for each; ``--log NAME`` picks them."""
