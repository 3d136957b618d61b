# make run   - set up .venv and train the reference experiment on Fashion-MNIST
# make test  - set up .venv and run the whole test suite
# make docs  - build the docs site strictly (a broken link or reference fails)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/datasets/fashion_mnist)
# Offline: TFDS prepares Fashion-MNIST from the shared original files instead of downloading.
export TFSOFTMAX_MANUAL_DIR ?= $(if $(wildcard $(SHARED_DATA)/*.gz),$(SHARED_DATA),)
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: run test test-fast lint docs sweep board bench benchmarks install
$(BIN)/tfsoftmax: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,docs]'
	touch $@

install: $(BIN)/tfsoftmax

run: install
	$(BIN)/tfsoftmax run experiments/fashion_mnist.toml

sweep: install
	$(BIN)/tfsoftmax sweep experiments/fashion_mnist_sweep.toml

board: install
	$(BIN)/tfsoftmax board logs

bench: install
	$(BIN)/tfsoftmax bench

# This project's own speed goals and the packed-against-standalone check (benchmarks/README.md).
benchmarks: install
	$(BIN)/python benchmarks/goals.py
	$(BIN)/python benchmarks/reproduce.py

test: install
	$(BIN)/python -m pytest -n 2 -m "not serial"
	$(BIN)/python -m pytest -m serial

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -n 2

lint: install
	$(BIN)/ruff format --check tfsoftmax tests benchmarks
	$(BIN)/ruff check tfsoftmax tests benchmarks
	$(BIN)/lint-imports --no-cache

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
