# Two commands on a fresh machine: `make run` and `make test`.
# Both create the virtualenv and install on first use; they reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run key index import-songs test lint typecheck imports pytest bench sandbox clean

# Quiet, and on stderr: `make key > file` (or reading the key off the screen) gets the key alone.
$(STAMP): pyproject.toml
	@echo "installing into $(VENV) (first run, or pyproject.toml changed)..." >&2
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -e '.[dev]' >&2
	@touch $(STAMP)

# `python -m bot` says why it stopped (exit 1: Discord or Spotify refused, 2: the settings). Its
# status must reach the caller (scripts, CI, systemd), so make adds its own "Error N" line after
# the bot's report: make cannot fail quietly.
run: $(STAMP)
	@$(PY) -m bot

# Print a new TOKEN_ENCRYPTION_KEY (with the venv's cryptography, nothing system-wide needed).
key: $(STAMP)
	@$(PY) -m bot keygen

# The module commands through the venv: make index ARGS="--playlist ID",
# make import-songs ARGS=mysql://user:pass@host/db
index: $(STAMP)
	@$(PY) -m bot index $(ARGS)

import-songs: $(STAMP)
	@$(PY) -m bot import-songs $(ARGS)

test: lint typecheck imports pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	$(PY) -m pytest

# The figures in docs/BENCHMARKS.md; `wrk` (Debian) is used by http_song when installed.
BENCHES := http_song relay "single_flight --storage sqlite" "single_flight --storage redis" \
	"loop_lag --storage sqlite" "loop_lag --storage redis" sync handover

bench: $(STAMP)
	@for b in $(BENCHES); do echo "== python -m tests.bench.$$b"; $(PY) -m tests.bench.$$b || exit 1; done

# A whole game night offline against fake Discord, Spotify and YouTube: make sandbox ARGS=--help
sandbox: $(STAMP)
	$(PY) -m tests.sandbox $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
