# uvm-emu: the two commands a newcomer types are `make run` and `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: venv run test bench coverage mutate lint soak clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or: make PY=python3 ...)"; exit 2; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

run: venv
	$(BIN)/emu run default --out runs

test: venv
	$(BIN)/python -m pytest

coverage: venv
	$(BIN)/python -m coverage erase
	$(BIN)/python -m coverage run -m pytest tests/kernel
	@rc=0; for m in kernel/uvm/uvm_pdaemon.py kernel/uvm/uvm_pdaemon_1_154.py; do \
	  $(BIN)/python -m coverage report --include=$$m --show-missing --fail-under=100 || rc=1; \
	done; exit $$rc

bench: venv
	$(BIN)/emu bench --json runs/bench.json

# mutation testing of the daemon ports (docs/mutation.md); SAMPLE=N tests N mutants (seed 17)
mutate: venv
	$(BIN)/python tools/mutate.py $(if $(SAMPLE),--sample $(SAMPLE),--fail-under 95)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

soak: venv
	$(BIN)/emu soak --minutes 10

clean:
	rm -rf $(VENV) runs build mutants *.egg-info .mypy_cache .ruff_cache .coverage
