"""pytest plugin (``pytest11`` entry point): gives plugin test suites the harness fixtures."""
