# Two entry points on a fresh machine: `make demo` and `make test`.
# Both build .venv from nothing: CPU torch 2.13.0 first (so no CUDA build is pulled),
# then searchkit with faiss-cpu, the parity extra and the test tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv bench-venv demo test test-fast lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cpu,parity,bench,dev,ray]'
	touch $(STAMP)

# The benches' peers: sentence-transformers' ONNX and OpenVINO backends (bench/peers.py).
# They pin transformers 4.x, so they get their own venv and the tests keep theirs.
BENCH_VENV ?= .venv-bench
bench-venv: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[cpu,bench,peers]'
	# OpenVINO on top, keeping what the ONNX peers pinned (a newer optimum-intel pulls an
	# optimum that optimum-onnx refuses).
	$(BENCH_VENV)/bin/python -m pip freeze --exclude-editable > $(BENCH_VENV)/constraints.txt
	-timeout 900 $(BENCH_VENV)/bin/python -m pip install -q -c $(BENCH_VENV)/constraints.txt -e '.[peers-openvino]' \
		|| echo "OpenVINO did not install: the bench runs the ONNX peers without it"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/searchkit ingest corpora/pydoc-topics --index index
	$(VENV)/bin/searchkit search "how do I catch an exception and clean up afterwards" --index index -k 5 --distinct

test: $(STAMP)
	$(VENV)/bin/ruff check searchkit tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check searchkit tests bench
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(BENCH_VENV) index/*.db index/*.faiss
