# Every target runs inside the project-local virtual environment made by `make setup`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= benchmarks/configs/avdigits.yaml
RUNS ?= runs
RESULTS ?= results
ARGS ?=
JOBS ?= 1
# The paper's datasets (not shipped; docs/datasets.md): DATASET is cremad or kinetics_sounds, DATA_ROOT
# its folder (the raw download or a layout of the field's repositories); CACHE_DIR where the decoded
# cache goes (default: DATA_ROOT/.geomreg-cache; the folder `prepare --out` wrote); ALLOW_MISSING how
# many listed clips the copy may lack, a count or a fraction such as 0.05 (default 0: every clip).
DATASET ?= cremad
DATA_ROOT ?=
CACHE_DIR ?=
ALLOW_MISSING ?= 0
TABLE1 = benchmarks/configs/table1_$(DATASET).yaml
TABLE4 = benchmarks/configs/table4_cremad.yaml
# Folders in YAML single quotes, so that a folder named 2024 stays a name.
REAL_DATA = --set "run.data.params.root='$(DATA_ROOT)'" $(if $(CACHE_DIR),--set "run.data.params.cache_dir='$(CACHE_DIR)'") --allow-missing $(ALLOW_MISSING)

.PHONY: setup test smoke reproduce tables ablation sensitivity figures table1 table4 data-check data-root bench clean-runs

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
	$(PY) -m benchmarks reproduce $(CONFIG) --runs $(RUNS) --results $(RESULTS) --readme README.md --jobs $(JOBS) $(ARGS)

tables: $(STAMP)
	$(PY) -m benchmarks tables $(CONFIG) --runs $(RUNS) --results $(RESULTS) --readme README.md $(ARGS)

# The Table 4 analogue and the tau × t sweep on the embedded default (runs shared with `reproduce`).
ablation:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_ablation.yaml

sensitivity:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_sensitivity.yaml

# Figures 2 and 3 analogues, the accuracy overview and the sensitivity heat map, from run records.
figures: $(STAMP)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits.yaml --runs $(RUNS) --results $(RESULTS)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_ablation.yaml --runs $(RUNS) --results $(RESULTS)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_sensitivity.yaml --runs $(RUNS) --results $(RESULTS)

# The paper's tables on real data: make table1 DATASET=cremad DATA_ROOT=/data/CREMA-D (GPU advised).
# The grid prepares the cache once (or reuses it), prints the data check and stops (exit 1) unless the
# copy is complete or within ALLOW_MISSING. Their tables go to $(RESULTS)/ only, never into README.md.
table1: $(STAMP) data-root
	$(PY) -m benchmarks reproduce $(TABLE1) --runs $(RUNS) --results $(RESULTS) --jobs $(JOBS) $(REAL_DATA) $(ARGS)

table4: $(STAMP) data-root
	$(PY) -m benchmarks reproduce $(TABLE4) --runs $(RUNS) --results $(RESULTS) --jobs $(JOBS) $(REAL_DATA) $(ARGS)

# The data of Table 1's runs, with the same params and cache (ARGS: --set overrides of that grid).
data-check: $(STAMP) data-root
	$(PY) -m benchmarks data-check $(TABLE1) $(REAL_DATA) $(ARGS)

data-root:
	@test -n "$(DATA_ROOT)" || { echo "set DATA_ROOT=<folder of $(DATASET)> (see docs/datasets.md)" >&2; exit 2; }

# Ratios measured side by side in one process (results/bench.md); under 5 minutes on 2 cores.
bench: $(STAMP)
	$(PY) -m benchmarks.bench --out $(RESULTS)/bench.md --readme README.md

clean-runs:
	rm -rf $(RUNS) build/smoke
