"""The run ids of every shipped grid are frozen: a change of the config schema (a new section, a new
arm) must leave the directories of the runs already trained in place. ``data/run_ids.json`` holds
each grid's ``<label>-<run id>`` list as it was before the objective controls were added."""
import json
from pathlib import Path

import pytest

from benchmarks.config import expand_grid, load_grid

CONFIGS = Path(__file__).resolve().parent.parent / "benchmarks" / "configs"
FROZEN = json.loads((Path(__file__).with_name("data") / "run_ids.json").read_text())


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_shipped_grids_keep_their_run_ids(name):
    runs = expand_grid(load_grid(CONFIGS / name))
    assert sorted(f"{r.label}-{r.run_id()}" for r in runs) == FROZEN[name]
