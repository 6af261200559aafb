# Every target runs inside the project-local virtual environment made by `make setup`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= benchmarks/configs/avdigits.yaml
RUNS ?= runs
RESULTS ?= results
ARGS ?=
# Runs trained at once. In the (default) portable numerics every run uses one thread, so a grid fills
# the cores with parallel runs; the records are the same for any JOBS.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
# SEEDS=N trains and tabulates the seeds 0..N-1 instead of the grid's own list (any grid target,
# e.g. `make reproduce SEEDS=5`); the tables must be rendered with the same SEEDS (and ARGS), else
# `make tables` says how many runs have no record and fails. A grid run with SEEDS or --set overrides
# in ARGS is a variant: its tables go to build/results/<grid>+<what changed>/, never into results/ or
# README.md (docs/configs.md, "Tables").
SEEDS ?=
SEED_SET = $(if $(SEEDS),$(if $(shell test "$(SEEDS)" -ge 1 2>/dev/null && echo ok),--set seeds=[$(shell seq -s, 0 $$(($(SEEDS) - 1)))],$(error SEEDS must be a positive integer, got '$(SEEDS)')))
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
TABLE7 = benchmarks/configs/table7_cremad.yaml
# The grid whose finished runs `make robustness` degrades at test time (default: the ablation grid).
ROBUSTNESS ?= benchmarks/configs/avdigits_ablation.yaml
# Folders in YAML single quotes, so that a folder named 2024 stays a name.
REAL_DATA = --set "run.data.params.root='$(DATA_ROOT)'" $(if $(CACHE_DIR),--set "run.data.params.cache_dir='$(CACHE_DIR)'") --allow-missing $(ALLOW_MISSING)

.PHONY: setup test test-slow repeatability smoke verify reproduce tables ablation sensitivity temperature lr-selection seed-plan powered controls robustness figures table1 table4 table7 data-check data-root bench docs clean-runs

setup: $(STAMP)

# Re-runs only when pyproject.toml changes, so a second `make setup` is quick and changes nothing.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -c "import torch, torchvision, torchaudio, geomreg, benchmarks; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'torchaudio', torchaudio.__version__)"
	touch $(STAMP)

# The CPU test suite without the end-to-end tests marked slow (those run in `make test-slow`, and in CI).
test: $(STAMP)
	TQDM_DISABLE=1 $(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	TQDM_DISABLE=1 $(PY) -m pytest -q -m slow

# What holds on any machine: a short sample of the default grid trained twice, with two jobs, and
# interrupted then resumed, in the portable numerics, must give the same records (about a minute).
repeatability: $(STAMP)
	rm -rf build/repeatability
	$(PY) -m benchmarks repeatability $(CONFIG) --runs build/repeatability

# The whole pipeline (grid -> records -> tables) on the random-tensor debug dataset, in a scratch folder.
smoke: $(STAMP)
	$(PY) -m benchmarks reproduce benchmarks/configs/debug.yaml --runs build/smoke/runs --results build/smoke/results $(SEED_SET) $(ARGS)

# Train the default grid (finished runs are skipped, an interrupted grid resumes), draw its figures and
# render the tables.
reproduce: $(STAMP)
	$(PY) -m benchmarks reproduce $(CONFIG) --runs $(RUNS) --results $(RESULTS) --readme README.md --jobs $(JOBS) $(SEED_SET) $(ARGS)

tables: $(STAMP)
	$(PY) -m benchmarks tables $(CONFIG) --runs $(RUNS) --results $(RESULTS) --readme README.md $(SEED_SET) $(ARGS)

# The Table 4 analogue, the paper's sensitivity grids (Pareto beta × tau, fixed lambda_intra × lambda_inter)
# and the choice of the unpublished temperature t, on the embedded default (runs shared with `reproduce`).
ablation:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_ablation.yaml

sensitivity:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_sensitivity.yaml
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_sensitivity_fixed.yaml

temperature:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_temperature.yaml

# Each method's learning rate, chosen on validation with the same budget for every method (the rule is in
# the config); avdigits.yaml's method_run holds the choice (results/avdigits_lr/selection.csv).
lr-selection:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_lr.yaml

# The seed count of the powered grid, from the default grid's committed per-seed results (the pilot):
# the rule and the targets (95% half-width of each method's multimodal DAGR difference: DGL 0.5 points,
# the others 1.0; at most 30 seeds, the 2-hour budget on 2 cores) are fixed here, before the powered grid runs.
seed-plan: $(STAMP)
	$(PY) -m benchmarks seed-plan $(RESULTS)/avdigits/per_seed.csv --target dgl=0.5 --target default=1.0 --max-seeds 30 --out $(RESULTS)/avdigits_powered/seed_plan.md

# The powered grid: the default grid at the planned seed count (its seeds 0-2 are the default grid's runs).
# Its table is the README's headline; `make reproduce` checks its verdicts against it.
powered:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_powered.yaml

# The Table 7 analogue: DGL with DAGR or an objective control in its place (docs/controls.md).
controls:
	$(MAKE) reproduce CONFIG=benchmarks/configs/avdigits_controls.yaml

# The Fig. 9 analogue (docs/robustness.md): test accuracy of the grid's selected checkpoints with one modality
# missing or corrupted, into $(RESULTS)/<grid>/robustness/. Trains the grid's unfinished runs first.
robustness: $(STAMP)
	$(PY) -m benchmarks grid $(ROBUSTNESS) --runs $(RUNS) --jobs $(JOBS) $(SEED_SET) $(ARGS)
	$(PY) -m benchmarks robustness $(ROBUSTNESS) --runs $(RUNS) --results $(RESULTS) $(SEED_SET) $(ARGS)

# Figures 2 and 3 analogues, the accuracy overview and the sensitivity heat map, from run records.
figures: $(STAMP)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits.yaml --runs $(RUNS) --results $(RESULTS) $(SEED_SET)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_ablation.yaml --runs $(RUNS) --results $(RESULTS) $(SEED_SET)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_sensitivity.yaml --runs $(RUNS) --results $(RESULTS) $(SEED_SET)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_sensitivity_fixed.yaml --runs $(RUNS) --results $(RESULTS) $(SEED_SET)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_temperature.yaml --runs $(RUNS) --results $(RESULTS) $(SEED_SET)
	$(PY) -m benchmarks figures benchmarks/configs/avdigits_controls.yaml --runs $(RUNS) --results $(RESULTS) $(SEED_SET)

# The paper's tables on real data: make table1 DATASET=cremad DATA_ROOT=/data/CREMA-D (GPU advised).
# The grid prepares the cache once (or reuses it), prints the data check and stops (exit 1) unless the
# copy is complete or within ALLOW_MISSING. Their tables go to $(RESULTS)/ only, never into README.md.
table1: $(STAMP) data-root
	$(PY) -m benchmarks reproduce $(TABLE1) --runs $(RUNS) --results $(RESULTS) --jobs $(JOBS) $(REAL_DATA) $(ARGS)

table4: $(STAMP) data-root
	$(PY) -m benchmarks reproduce $(TABLE4) --runs $(RUNS) --results $(RESULTS) --jobs $(JOBS) $(REAL_DATA) $(ARGS)

table7: $(STAMP) data-root
	$(PY) -m benchmarks reproduce $(TABLE7) --runs $(RUNS) --results $(RESULTS) --jobs $(JOBS) $(REAL_DATA) $(ARGS)

# The data of Table 1's runs, with the same params and cache (ARGS: --set overrides of that grid).
data-check: $(STAMP) data-root
	$(PY) -m benchmarks data-check $(TABLE1) $(REAL_DATA) $(ARGS)

data-root:
	@test -n "$(DATA_ROOT)" || { echo "set DATA_ROOT=<folder of $(DATASET)> (see docs/datasets.md)" >&2; exit 2; }

# Ratios measured side by side in one process (results/bench.md with its measurements in results/bench.json,
# its targets in docs/performance.md); about 35 minutes on 2 cores. Re-render without measuring:
# python -m benchmarks.bench --render results/bench.json --readme docs/performance.md
bench: $(STAMP)
	$(PY) -m benchmarks.bench --out $(RESULTS)/bench.md --readme docs/performance.md

# The option tables of docs/ rendered from the code's config dataclasses (a test checks they are current).
docs: $(STAMP)
	$(PY) -m benchmarks docs

# Re-train a fixed sample of the default grid (joint without/with DAGR and the references, seed 0) and
# compare it with the committed results/avdigits/per_seed.csv: identical, consistent (another hardware
# class, inside the committed seeds' spread) or not; exits 1 when it must be identical and is not, or is
# inconsistent.
verify: $(STAMP)
	$(PY) -m benchmarks verify benchmarks/configs/avdigits.yaml --spread benchmarks/configs/avdigits_powered.yaml --runs build/verify/runs --results $(RESULTS) --jobs $(JOBS)

clean-runs:
	rm -rf $(RUNS) build/smoke build/verify
