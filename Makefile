# The two commands of the README: `make demo` and `make test`. Each creates .venv/ when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := forensics
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: demo test lint venv clean-runs calibrate validate

# torch goes in first as the CPU build; otherwise sentence-transformers pulls CUDA wheels (gigabytes).
# Where pip's configured index does not serve the CPU build (plain PyPI), name one that does:
#   make TORCH_INDEX=https://download.pytorch.org/whl/cpu test
# constraints.txt pins every package to the versions the findings were validated with.
TORCH_INDEX ?=
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (forensics)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/forensics run data/demo/case.yaml --out runs/demo-alpaca
	@echo "Report: runs/demo-alpaca/report.html and runs/demo-alpaca/report.pdf"

test: $(STAMP)
	$(BIN)/ruff check forensics tests benchmarks
	$(BIN)/nbstripout --verify notebooks/*.ipynb
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check forensics tests benchmarks

LABELS ?= ../shared/data/alpaca_eval/LABELS.csv

validate: $(STAMP)
	$(BIN)/forensics validate $(LABELS) --out validation-check

calibrate: $(STAMP)
	$(BIN)/forensics calibrate $(LABELS) --validation-dir validation

clean-runs:
	rm -rf runs/
