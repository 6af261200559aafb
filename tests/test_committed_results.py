"""Committed outputs that need no run records equal what the code renders today.

The paper's grids on CREMA-D and Kinetics-Sounds cannot be trained here (the datasets are not
shipped), so their committed tables are the no-run render: every cell "–", the published numbers
filled in, the missing runs listed. A table names code commits only when it has runs, so the
no-run render is the same on every checkout.
"""
from pathlib import Path

import pytest

from benchmarks.__main__ import main as cli
from benchmarks.data.check import disk_data
from benchmarks.grid.config import expand_grid, load_grid

ROOT = Path(__file__).parents[1]
OUTPUTS = ("table.md", "table.csv", "table.tex", "per_seed.csv")


def disk_grids() -> list[str]:
    """The shipped grids whose runs read a dataset from disk."""
    configs = sorted((ROOT / "benchmarks" / "configs").glob("*.yaml"))
    return [p.stem for p in configs if disk_data(cfg.data for cfg in expand_grid(load_grid(p, [])))]


def test_the_paper_grids_are_the_disk_grids():
    assert disk_grids() == ["table1_cremad", "table1_kinetics_sounds", "table4_cremad", "table7_cremad"]


@pytest.mark.parametrize("grid", disk_grids())
def test_committed_no_run_tables_equal_the_render(grid, tmp_path, capsys):
    config = ROOT / "benchmarks" / "configs" / f"{grid}.yaml"
    runs = tmp_path / "runs"
    runs.mkdir()
    assert cli(["tables", str(config), "--runs", str(runs), "--results", str(tmp_path), "--partial"]) == 0
    assert "runs missing" in capsys.readouterr().out
    for name in OUTPUTS:
        committed = ROOT / "results" / grid / name
        assert committed.exists(), f"{committed.relative_to(ROOT)} is not committed"
        assert (tmp_path / grid / name).read_text() == committed.read_text(), \
            f"{committed.relative_to(ROOT)} differs from what `python -m benchmarks tables` renders"


def test_the_performance_page_shows_the_committed_bench_report(tmp_path):
    from benchmarks.bench.__main__ import splice_targets

    page = tmp_path / "performance.md"
    page.write_text((ROOT / "docs" / "performance.md").read_text())
    splice_targets(page, (ROOT / "results" / "bench.md").read_text())
    assert page.read_text() == (ROOT / "docs" / "performance.md").read_text()


def test_the_default_grid_trains_each_method_at_its_selected_learning_rate():
    """avdigits.yaml's method_run holds, for every method, the rate the committed selection chose on
    validation (results/avdigits_lr/selection.csv), for both arms."""
    import pandas as pd

    from benchmarks.grid.config import expand_grid, load_grid

    selection = pd.read_csv(ROOT / "results" / "avdigits_lr" / "selection.csv")
    chosen = dict(zip(selection.loc[selection["chosen"], "method"], selection.loc[selection["chosen"], "optim.lr"]))
    grid = load_grid(ROOT / "benchmarks" / "configs" / "avdigits.yaml")
    assert set(chosen) == set(grid.methods)
    trained = {(cfg.method.name, cfg.dagr.enabled): cfg.optim.lr for cfg in expand_grid(grid)
               if cfg.method.name != "unimodal"}
    assert trained == {(m, dagr): chosen[m] for m in grid.methods for dagr in (False, True)}
