# Every target runs inside the project-local virtual environment made by `make setup`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= benchmarks/configs/avdigits.yaml
RUNS ?= runs
RESULTS ?= results
ARGS ?=

.PHONY: setup test smoke reproduce tables clean-runs

setup: $(STAMP)

# Re-runs only when pyproject.toml changes, so a second `make setup` is quick and changes nothing.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -c "import torch, torchvision, torchaudio, geomreg, benchmarks; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'torchaudio', torchaudio.__version__)"
	touch $(STAMP)

test: $(STAMP)
	TQDM_DISABLE=1 $(PY) -m pytest -q

# The whole pipeline (grid -> records -> tables) on the random-tensor debug dataset, in a scratch folder.
smoke: $(STAMP)
	$(PY) -m benchmarks reproduce benchmarks/configs/debug.yaml --runs build/smoke/runs --results build/smoke/results $(ARGS)

# Train the default grid (finished runs are skipped, an interrupted grid resumes) and render the tables.
reproduce: $(STAMP)
	$(PY) -m benchmarks reproduce $(CONFIG) --runs $(RUNS) --results $(RESULTS) --readme README.md $(ARGS)

tables: $(STAMP)
	$(PY) -m benchmarks tables $(CONFIG) --runs $(RUNS) --results $(RESULTS) --readme README.md $(ARGS)

clean-runs:
	rm -rf $(RUNS) build/smoke
