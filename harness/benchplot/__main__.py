"""``python -m harness.benchplot JSON [--out DIR]``: the same as ``harness bench-plot`` (one
CLI, not two). Kept apart from the plotting code so that the CLI, which imports the plotting
through the API, is not in a circle with it."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    from harness.cli import main as cli

    cli.main(["bench-plot", *(sys.argv[1:] if argv is None else argv)], prog_name="harness")


if __name__ == "__main__":
    main()
