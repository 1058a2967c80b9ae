# One entry point for a fresh machine (Rust, Python 3.11 and pip are all it needs):
#   make demo    set up, build, and train + evaluate BPR on the built-in data
#   make test    set up, build, and run the whole test suite (clippy + cargo test + the wheel + docs + pytest)
#   make wheel   build the abi3 wheel into dist/ (pip install it next to torch==2.11.0): glibc 2.28
#   make test-wheel   install that wheel into a fresh venv and run the demo there
#   make bench   fashionrec BPR vs implicit's BPR on MovieLens 100k (needs ../shared/data)
#   make bench-data   the data readers and the image bank vs numpy / pandas / PIL
#   make docs    build the documentation site into site/ (mkdocs --strict; needs no build)
#   make lint    the no-panic rule of the core (cargo clippy; part of make test)
#   make notebooks   run notebooks/*.ipynb in place on the real data, keeping their outputs
#                (needs ../shared/data or FASHIONREC_DATA; about 15 minutes on a 2-core CPU)
# Everything goes into .venv; libtorch is the one inside PyPI's torch==2.11.0 (never downloaded
# separately). The build links against that torch, so it is installed before the crate is built.

PYTHON ?= python3
VENV ?= .venv
ACTIVATE = . $(VENV)/bin/activate
# libjpeg-turbo's SIMD for the reduced-scale JPEG decoder (Cargo feature jpeg-simd) needs nasm
# at build time: on when nasm is installed (.ci/run installs it), else a warning and plain C.
NASM := $(shell command -v nasm 2>/dev/null)
FEATURES := $(if $(NASM),-F jpeg-simd,)
# maturin's --features replaces pyproject.toml's, so the extension's own are repeated here.
PY_FEATURES := --features "python extension-module pyo3/abi3-py311 $(if $(NASM),jpeg-simd,)"
NASM_NOTE = $(if $(NASM),,@echo "warning: nasm not found: building the JPEG decoder without SIMD (apt install nasm)")

.PHONY: setup build demo wheel test test-rust test-python test-wheel lint bench bench-data gpu-check docs notebooks clean

$(VENV)/.setup-done:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "maturin>=1.8,<2" "torch==2.11.0"
	touch $@

setup: $(VENV)/.setup-done

# Editable install of the package and its runtime + test dependencies (from pyproject.toml).
build: setup
	$(NASM_NOTE)
	$(ACTIVATE) && maturin develop --release --extras test $(PY_FEATURES)

demo: build
	$(ACTIVATE) && python -m fashionrec demo

test-rust: setup
	$(ACTIVATE) && cargo test --release $(FEATURES)

# The crate's rule against panics on input-derived values (src/lib.rs: clippy's unwrap_used,
# expect_used, panic and indexing_slicing denied outside tests), on the core and then on the
# core with the Python bindings (src/python/, built only with the `python` feature).
lint: setup
	$(ACTIVATE) && cargo clippy --release --lib $(FEATURES)
	$(ACTIVATE) && cargo clippy --release --lib $(PY_FEATURES)

test-python: build
	$(ACTIVATE) && python -m pytest -q

# The wheel users install: abi3 (CPython >= 3.11), no libtorch inside (torch==2.11.0 supplies
# it). Built with the features of pyproject.toml; reuses the dependencies of `make build`.
# Its platform is torch 2.11's own, manylinux_2_28 (glibc 2.28), whatever this machine's glibc:
# tools/wheel-link/link.sh links the extension with zig's lld against glibc 2.28 (PyPI's
# ziglang, pip-installed into the venv here) and gcc's libstdc++; only the extension's own link
# changes (rustc arguments after `--`), and check_glibc.py fails the build if any symbol needs
# a newer glibc or libstdc++. Where ziglang can't be installed (or off Linux x86-64): a warning
# and a linux_x86_64 wheel that needs this machine's glibc. WHEEL_GLIBC=native asks for that.
WHEEL_GLIBC ?= 2.28
ZIGLANG_VERSION = 0.17.1
WHEEL_LINK = -- -C linker=$(CURDIR)/tools/wheel-link/link.sh -C linker-flavor=gcc
wheel: setup
	rm -f dist/fashionrec-*.whl
	$(NASM_NOTE)
	@if [ "$(WHEEL_GLIBC)" = 2.28 ] && [ "$$(uname -sm)" = "Linux x86_64" ] && \
	    { $(VENV)/bin/python -m pip show ziglang 2>/dev/null | grep -qx "Version: $(ZIGLANG_VERSION)" || \
	      $(VENV)/bin/python -m pip install --quiet "ziglang==$(ZIGLANG_VERSION)"; }; then \
	  echo "wheel: manylinux_2_28 (glibc 2.28), linked by tools/wheel-link/link.sh"; \
	  $(ACTIVATE) && WHEEL_ZIG="python -m ziglang" maturin build --release --out dist \
	    --compatibility manylinux_2_28 $(PY_FEATURES) $(WHEEL_LINK) && \
	  python tools/wheel-link/check_glibc.py --platform manylinux_2_28; \
	else \
	  echo "warning: no glibc 2.28 link (WHEEL_GLIBC=$(WHEEL_GLIBC), or no ziglang $(ZIGLANG_VERSION)):" \
	    "the wheel is tagged linux_x86_64 and needs this machine's glibc"; \
	  $(ACTIVATE) && maturin build --release --out dist $(PY_FEATURES) && \
	  { python tools/wheel-link/check_glibc.py || true; }; \
	fi

# A fresh venv (no system site-packages, run outside the checkout) gets the wheel and runs the
# demo. TORCH=link (default) links the build's torch into it without copying; TORCH=pip
# installs torch==2.11.0 there from pip (its cache, else 2.7 GB of downloads).
TORCH ?= link
test-wheel: wheel
	$(ACTIVATE) && python tests/wheel_install.py --torch $(TORCH)

# pytest last, so its summary is the closing line CI reads. docs: a few seconds (--strict).
test: build lint test-rust test-wheel docs test-python

# Every GPU-side check in one table (on a CUDA machine; DEVICE=cpu runs it here).
DEVICE ?= cuda
gpu-check: build
	$(ACTIVATE) && python benches/gpu_check.py --device $(DEVICE)

bench: build
	$(ACTIVATE) && python -m pip install --quiet "implicit==0.7.3" scipy
	$(ACTIVATE) && python benches/bpr_movielens.py
	$(ACTIVATE) && cargo bench --bench kernel_timing

bench-data: build
	$(ACTIVATE) && python benches/image_decode.py
	$(ACTIVATE) && python benches/dvbpr_read.py
	$(ACTIVATE) && python benches/read_features.py
	$(ACTIVATE) && python benches/read_amazon.py
	$(ACTIVATE) && python benches/read_tabular.py

# The documentation site (mkdocs.yml, docs/). mkdocstrings reads python/fashionrec and
# _core.pyi without importing them: neither the extension nor torch is needed. The docs tools
# go into $(VENV) once (a bare venv is made when there is none yet); --strict fails on any
# warning (a broken link or reference).
DOCS_TOOLS = "mkdocs>=1.6,<2" "mkdocs-material>=9.5" "mkdocstrings[python]>=0.26" "mkdocs-jupyter>=0.25" ruff
$(VENV)/.docs-tools:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(DOCS_TOOLS)
	touch $@

docs: $(VENV)/.docs-tools
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/python -m mkdocs build --strict -d site

# The notebooks executed in place on the real data sets, so they are committed with their tables
# and plots (tools/run_notebooks.py: FASHIONREC_NOTEBOOK_SMALL removed, plots inline as PNG, no
# progress bars). Not part of `make test`: CI runs them on small data (tests/test_notebooks.py).
# NOTEBOOKS= picks some; NOTEBOOK_TIMEOUT is per cell, in seconds.
FASHIONREC_DATA ?= $(abspath ../shared/data)
NOTEBOOKS ?= $(sort $(wildcard notebooks/*.ipynb))
NOTEBOOK_TIMEOUT ?= 1200
notebooks: build
	FASHIONREC_DATA=$(FASHIONREC_DATA) $(VENV)/bin/python tools/run_notebooks.py --timeout $(NOTEBOOK_TIMEOUT) $(NOTEBOOKS)

clean:
	rm -rf $(VENV) target dist site .cache
