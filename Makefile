# The README's two commands: `make demo` and `make test`. Each sets up everything
# it needs on a fresh machine: the virtual environment, the packages and the data.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt only when the dependency list changes.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 -q

.PHONY: venv data browser test demo bench-smoke clean

venv: $(STAMP)

# torch is installed first and on its own, pinned, so that resolving the other
# packages never swaps in a different build (the local CPU wheel here, the
# normal CUDA wheel on a GPU machine).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install -q -e ".[test,mlflow,ray]"
	touch $@

# Fashion-MNIST: found locally, installed from the Debian package, or downloaded (checksummed).
data: venv
	$(BIN)/prunebench data fetch fashion-mnist

# Headless Chromium for the HTML report's browser test: installed only when missing, and only
# with apt-get as root on Debian; elsewhere that test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium not installed (needs root on Debian): the HTML report's browser test will skip"

test: venv data browser
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy src
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv data
	$(BIN)/prunebench demo

# Every bench/ script's --smoke mode (a few seconds each; `make test` runs the same test).
bench-smoke: venv data
	$(BIN)/python -m pytest -q -n 0 tests/test_bench_smoke.py

clean:
	rm -rf $(VENV) .pytest_cache src/*.egg-info
