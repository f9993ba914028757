# Two commands on a fresh machine:  `make demo`  (end to end)  and  `make test`.
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first, so that nothing pulls the multi-GB CUDA build where no NVIDIA GPU is:
# tools/install_torch.py tries PyTorch's CPU wheel index, then falls back to the plain name
# (a GPU box gets the CUDA build of the locked release). Your own pip arguments instead, e.g.:
#   make setup TORCH_ARGS="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_ARGS ?=
# The extras make setup installs, and the ones tools/check_env.py then requires.
EXTRAS := dev,heic,quant

# Every install goes through the lock (requirements.lock): the exact set the tests pass on.
LOCK   := requirements.lock

.PHONY: setup demo test test-fast check-env lint test-services bench gpu-acceptance lock clean docs docs-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK) Makefile tools/install_torch.py tools/fetch_clip_vocab.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_ARGS),$(BIN)/python -m pip install --quiet -c $(LOCK) "$(firstword $(TORCH_ARGS))" $(wordlist 2,99,$(TORCH_ARGS)),$(BIN)/python tools/install_torch.py --quiet)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	$(BIN)/python tools/check_env.py --extras $(EXTRAS)
	$(BIN)/python tools/fetch_clip_vocab.py
	touch $@

# A fresh resolve of pyproject.toml's ranges into a new lock. Commit it only after `make test`
# passes on it (`make lock && make clean test`).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	$(if $(TORCH_ARGS),.venv-lock/bin/python -m pip install --quiet "$(firstword $(TORCH_ARGS))" $(wordlist 2,99,$(TORCH_ARGS)),.venv-lock/bin/python tools/install_torch.py --unlocked --quiet)
	.venv-lock/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	.venv-lock/bin/python -m pip check
	{ sed -n '/^#/p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^#' | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

demo: setup
	$(BIN)/headshot demo

lint: setup
	$(BIN)/ruff check headshot tests bench tools
	$(BIN)/ruff format --check headshot tests bench tools

check-env: setup
	$(BIN)/python tools/check_env.py --extras $(EXTRAS)

test: check-env lint docs-check test-services
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The edit-run loop: every test file not marked slow (pytest -m "not slow"), under 2 minutes
# on 2 cores; the whole suite stays `make test`.
test-fast: setup test-services
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

# The documentation site (mkdocs.yml, docs/): built strictly, so a broken link, a page outside
# the nav or a missing image fails the tests (not --quiet: it would hide the warnings that
# --strict counts). `make docs` serves it on http://127.0.0.1:8000.
docs-check: setup
	@site=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $$site >$$site.log 2>&1; \
	  status=$$?; [ $$status = 0 ] || cat $$site.log; rm -rf $$site $$site.log; exit $$status

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8000

# Real components the server tests start themselves: Debian's chromium (the page, driven by
# Playwright) and the PostgreSQL server binaries (the repository). Installed once, quietly,
# where apt-get can (CI runs as root); otherwise those tests are skipped and say why.
test-services:
	@test -x /usr/bin/chromium && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium postgresql >/dev/null; } || \
	  echo "chromium/postgresql not installed: the page and PostgreSQL tests will be skipped"

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# On one H100/H200: full-size SDXL, FLUX.1-dev, klein 4B (random weights); docs/benchmarks.md says how.
gpu-acceptance:
	bash bench/gpu_acceptance.sh

clean:
	rm -rf $(VENV) outputs/models outputs/demo
