# Two commands on a fresh machine:  `make demo`  (end to end)  and  `make test`.
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# On a machine without an NVIDIA GPU, install the CPU build of torch first so that
# nothing pulls the multi-GB CUDA build. On a GPU box, the default torch wheel is used.
# Elsewhere (no local CPU wheel), e.g.: make setup TORCH_ARGS="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_ARGS ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch>=2.4,torch==2.13.0)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(firstword $(TORCH_ARGS))" $(wordlist 2,99,$(TORCH_ARGS))
	$(BIN)/python -m pip install --quiet -e ".[dev,heic]"
	touch $@

demo: setup
	$(BIN)/headshot demo

lint: setup
	$(BIN)/ruff check headshot tests bench
	$(BIN)/ruff format --check headshot tests bench

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) outputs/models outputs/demo
