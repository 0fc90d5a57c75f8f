"""pytest-benchmark timing runs (see docs/benchmarks.md); a package so tests share support.py."""
