# Set-up is part of every target: a fresh clone needs nothing but python3 and make.
# torch is pinned to 2.13.0 through constraints.txt (the CPU build on this machine's disk);
# the package itself asks only for torch>=2.2.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench clean

# `make run` needs only the core; the heavy extras (ray, optuna, the browser driver, zoo,
# tensorboard, mlflow) come with
# `make test`, which runs their tests.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,browser,ray,tune,zoo,tensorboard,mlflow]'
	touch $(TEST_STAMP)

run: $(STAMP)  ## the main job: every task x model pair of the default grid
	$(BIN)/harness run

test: $(TEST_STAMP)  ## lint, the test suite, and the benchmarks once as a smoke test (no timing)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest benchmarks --benchmark-disable -q -m "not sweep"

bench: $(TEST_STAMP)  ## timing runs, saved for later comparison (see docs/benchmarks.md)
	$(BIN)/python -m pytest benchmarks --benchmark-autosave -m "not sweep"

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) results .pytest_cache .benchmarks
