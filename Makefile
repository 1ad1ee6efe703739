# Two commands are all a user needs: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A Python >= 3.12 for the venv: $(PYTHON) if given, else the first of python3.13,
# python3.12, python3 on PATH that is >= 3.12, else one that pyenv has installed
# (even when its shim is not active). See scripts/find-python.sh.
PYTHON ?= $(shell sh scripts/find-python.sh)

.PHONY: setup run test test-all lint score-summary score-curve bench clean

setup: $(STAMP)

# Reinstall only when the declared dependencies change; makes `setup` idempotent.
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found; install Python 3.12 or newer (e.g. 'pyenv install 3.12' or your package manager's python3.12)"; exit 2; }
	@test -x $(PY) && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@# Compile the curve engine's kernels once, into numba's on-disk cache.
	$(PY) -c "from kmbayes.reconstruct._segment_kernel import warm; warm()"
	@# Byte-compile the package, so the CLI's start-up does not compile it on
	@# every call where PYTHONDONTWRITEBYTECODE is set (as on this project's machines).
	$(PY) -m compileall -q src > /dev/null
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
	$(PY) benchmarks/run_time.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
