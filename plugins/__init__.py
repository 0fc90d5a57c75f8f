"""Built-in model plugins, one module each (installed as ``harness.models``)."""
