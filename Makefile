# Two commands are all a user needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-all lint score-summary score-curve bench clean

setup: $(STAMP)

# Reinstall only when the declared dependencies change; makes `setup` idempotent.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/kmbayes run

test: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -m "not slow" -q

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

score-summary: setup
	$(PY) ../shared/validation/score.py --kmdata ../shared/validation/kmdata --mode summary \
		--cmd '$(VENV)/bin/kmbayes reconstruct {toml} --out {csv}'

score-curve: setup
	$(PY) ../shared/validation/score.py --kmdata ../shared/validation/kmdata --mode curve \
		--cmd '$(VENV)/bin/kmbayes reconstruct {toml} --out {csv}'

bench: setup
	$(PY) benchmarks/reconstruct_speed.py
	$(PY) benchmarks/fit_grid.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
