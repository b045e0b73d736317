# One-command set-up: every target creates .venv and installs the project if needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock demo test test-fast test-avx2 test-v2 bench zoo clean

# Installs exactly requirements.lock (every dependency of every extra, pinned, with sha256
# hashes), then the project itself without dependencies. torch is the 2.13.0 CPU build
# (2.13.0+cpu); pip finds that wheel through this machine's pip find-links, elsewhere add
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu. Its hash is the hash of that wheel.
# --no-build-isolation: the build backend (setuptools) comes from the lock too. The filter
# silences only setuptools' "Editable installation" notice (information, not a warning: every
# editable install of a package-dir layout like ours gets it).
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
		$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

PIP_VERSION := 26.3
UV_VERSION := 0.13.9
LOCK_TOOLS := build/lock-tools
# Where uv looks for the torch CPU wheel: the find-links of this machine's pip if set, else
# PyTorch's CPU index (the CUDA build on PyPI has the same version without +cpu).
TORCH_SOURCE ?= $(if $(PIP_FIND_LINKS),$(foreach d,$(PIP_FIND_LINKS),--find-links $(d)),--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)

# Regenerates requirements.lock from pyproject.toml (all extras) and constraints.txt (the torch
# pin), for CPython 3.11 on this platform, with uv in its own virtual environment.
lock:
	test -x $(LOCK_TOOLS)/bin/uv || ($(PY) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION))
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --all-extras -c constraints.txt \
		--generate-hashes --python-version 3.11 $(TORCH_SOURCE) \
		--custom-compile-command "make lock" -o requirements.lock

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlsysgym demo

# The whole suite, slow tests included (this is what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# Quick loop for development: skips tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The suite as on an AVX2 CPU without AVX-512 (test-avx2) or on an x86-64-v2 CPU without AVX
# (test-v2) (qemu-user, 35-48 min in the recorded runs; see .ci/emulate-cpu), less the tests that compare measured
# run times (emulated vector code is no faster).
test-avx2: $(STAMP)
	.ci/emulate-cpu haswell $(BIN)/python -m pytest -q -m "not measured"

test-v2: $(STAMP)
	.ci/emulate-cpu nehalem $(BIN)/python -m pytest -q -m "not measured"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ir.py

zoo: $(STAMP)
	$(BIN)/python -m mlsysgym.experiments.make_zoo --out ir/zoo_models

clean:
	rm -rf $(VENV) build *.egg-info
