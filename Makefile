# Set-up is part of every target: a fresh machine (Python 3.11, no torch) needs only `make demo` / `make test`.
# torch is pinned to the CPU build first; an unpinned torch would pull a multi-GB CUDA build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
RUN ?= runs/demo

.PHONY: setup demo test bench clean browser

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[ml,test]"
	touch $@

demo: setup
	$(BIN)/medforget run --preset demo --out $(RUN)

test: setup browser
	$(BIN)/python -m pytest -q

# The report test renders report.html in Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the report browser test will be skipped outside CI"

bench: setup
	$(BIN)/python benchmarks/generate_speed.py

clean:
	rm -rf runs bench .pytest_cache
