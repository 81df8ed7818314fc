# `make demo` runs the main job, `make test` the test suite; both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# CI sets TORCH=torch==2.13.0 (the CPU wheel on disk); users get any torch the range allows.
TORCH ?= torch>=2.3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[dev,export,ray,openvino]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/echoseg demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python benchmarks/load_camus224.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
