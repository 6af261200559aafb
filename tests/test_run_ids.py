"""The run ids of every shipped grid are frozen: a change of the config schema (a new section, a new
arm) must leave the directories of the runs already trained in place. ``data/run_ids.json`` holds
each grid's ``<label>-<run id>`` list; it is rewritten only with a change that moves numbers (a method's
learning rate, a default that changes what a run trains), in the commit that re-trains those runs."""
import json
from pathlib import Path

import pytest

from benchmarks.grid.config import expand_grid, load_grid

CONFIGS = Path(__file__).resolve().parent.parent / "benchmarks" / "configs"
FROZEN = json.loads((Path(__file__).with_name("data") / "run_ids.json").read_text())


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_shipped_grids_keep_their_run_ids(name):
    runs = expand_grid(load_grid(CONFIGS / name))
    assert sorted(f"{r.label}-{r.run_id()}" for r in runs) == FROZEN[name]


@pytest.mark.parametrize("name, base", [("avdigits_controls.yaml", "avdigits.yaml"),
                                        ("table7_cremad.yaml", "table1_cremad.yaml")])
def test_control_grids_share_the_dagr_runs_of_their_base(name, base):
    runs = expand_grid(load_grid(CONFIGS / name))
    shared = {f"{r.label}-{r.run_id()}" for r in runs if r.arm in ("none", "dagr")}
    assert shared == {label for label in FROZEN[base] if label.startswith("dgl-") or label.startswith("dgl+dagr-")}
    assert {r.arm for r in runs} == {"none", "dagr", "naive-align", "vicreg", "barlow-twins", "unit-sphere"}
