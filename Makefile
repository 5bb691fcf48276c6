PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-full test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  # about 6 min on a loaded 2-core machine (less when idle): pretrained models, probes, a short training
	$(BIN)/sadyn demo --out out/demo

demo-full: $(STAMP)  # trains the small preset here first: about 40 minutes on one core
	$(BIN)/sadyn demo --full-training --out out/demo-full

test: $(STAMP)
	$(BIN)/ruff check sadyn tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check sadyn tests benchmarks
	$(BIN)/ruff format --check sadyn tests benchmarks

clean:
	rm -rf $(VENV) out
