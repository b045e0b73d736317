# One-command set-up: every target creates .venv and installs the project if needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench zoo clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlsysgym demo

# The whole suite, slow tests included (this is what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# Quick loop for development: skips tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ir.py

zoo: $(STAMP)
	$(BIN)/python -m mlsysgym.experiments.make_zoo

clean:
	rm -rf $(VENV) build *.egg-info
