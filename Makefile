# Set-up is part of every target: a fresh machine (Python 3.11, no torch) needs only `make demo` / `make test`.
# torch is pinned to the CPU build first; an unpinned torch would pull a multi-GB CUDA build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
RUN ?= runs/demo

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[ml,test]"
	touch $@

demo: setup
	$(BIN)/medforget generate --preset demo --seed 0 --out $(RUN)/bench --overwrite
	$(BIN)/medforget validate $(RUN)/bench

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/generate_speed.py

clean:
	rm -rf runs bench .pytest_cache
