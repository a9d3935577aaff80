# The README's two commands: `make demo` and `make test`. Each sets up everything
# it needs on a fresh machine: the virtual environment, the packages and the data.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt only when the dependency list changes.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 -q

.PHONY: venv data test demo clean

venv: $(STAMP)

# torch is installed first and on its own, pinned, so that resolving the other
# packages never swaps in a different build (the local CPU wheel here, the
# normal CUDA wheel on a GPU machine).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# Fashion-MNIST: found locally, installed from the Debian package, or downloaded (checksummed).
data: venv
	$(BIN)/prunebench data fetch fashion-mnist

test: venv data
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy src
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv data
	$(BIN)/prunebench demo

clean:
	rm -rf $(VENV) .pytest_cache src/*.egg-info
