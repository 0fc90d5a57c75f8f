"""The settings a run or tune works with: defaults < ``[tool.harness]`` < flags, and the
``FIELD=VALUE`` overrides of recipes and options."""
