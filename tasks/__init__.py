"""Built-in task plugins, one module each (installed as ``harness.tasks``)."""
