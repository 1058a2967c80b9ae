# One entry point for a fresh machine (Rust, Python 3.11 and pip are all it needs):
#   make demo    set up, build, and train + evaluate BPR on the built-in data
#   make test    set up, build, and run the whole test suite (cargo test + pytest)
#   make bench   fashionrec BPR vs implicit's BPR on MovieLens 100k (needs ../shared/data)
#   make bench-data   the data readers and the image bank vs numpy / pandas / PIL
# Everything goes into .venv; libtorch is the one inside PyPI's torch==2.11.0 (never downloaded
# separately). The build links against that torch, so it is installed before the crate is built.

PYTHON ?= python3
VENV ?= .venv
ACTIVATE = . $(VENV)/bin/activate

.PHONY: setup build demo test test-rust test-python bench bench-data clean

$(VENV)/.setup-done:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "maturin>=1.8,<2" "torch==2.11.0"
	touch $@

setup: $(VENV)/.setup-done

# Editable install of the package and its runtime + test dependencies (from pyproject.toml).
build: setup
	$(ACTIVATE) && maturin develop --release --extras test

demo: build
	$(ACTIVATE) && python -m fashionrec demo

test-rust: setup
	$(ACTIVATE) && cargo test --release

test-python: build
	$(ACTIVATE) && python -m pytest -q

test: build test-rust test-python

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

clean:
	rm -rf $(VENV) target
