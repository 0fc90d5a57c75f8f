"""Trackers a run logs to (``--log tensorboard --log mlflow``), behind one small contract.

``contract``: what a logger plugin registers and what the driver calls on it (the plugin API's
layer: the plugin manager checks registrations against it). ``fanout``: opens the loggers a
run chose, hands each its records and isolates one that fails. ``figures``: what of a cell
record a tracker logs. ``tensorboard`` and ``mlflow``: the built-ins, plugins registered
through entry points like any other.
"""
