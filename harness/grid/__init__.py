"""Many cells: planning task x model x seed, the pending loop with its restarts (once, in
:mod:`harness.grid.runner`), and the executors cells run on (in-process, pool, Ray)."""
