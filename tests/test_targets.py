"""Committed results are written by their own grid only: a run of a committed grid with other seeds or
overrides (a variant) writes a folder of its own and leaves results/ and README.md byte-identical."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.report import targets
from benchmarks.report.targets import variant_name, variant_overrides

ROOT = Path(__file__).resolve().parents[1]
AVDIGITS = ROOT / "benchmarks" / "configs" / "avdigits.yaml"
# One short run of the default grid: one seed of joint training, one epoch, on a tenth of the training set.
SUBSET = ["--set", "seeds=[0]", "--set", "methods={joint: {}}", "--set", "references=[]", "--set", "dagr_arms=[none]",
          "--set", "run.optim.epochs=1", "--set", "run.model.width=8", "--set", "run.data.params.train_fraction=0.1"]
VARIANT = "avdigits+" + variant_name(SUBSET[1::2])


def test_what_makes_a_variant_and_its_name():
    assert variant_overrides(AVDIGITS, ["seeds=[0, 1, 2]", "run.device=cpu"]) == []  # as written; where it runs
    table1 = ROOT / "benchmarks" / "configs" / "table1_cremad.yaml"
    assert variant_overrides(table1, ["run.data.params.root='/data/CREMA-D'", "run.data.num_workers=2"]) == []
    assert variant_overrides(AVDIGITS, ["seeds=[0, 1]", "run.device=cpu"]) == ["seeds=[0, 1]"]
    assert variant_name(["seeds=[0, 1]", "run.optim.epochs=8"]) == "seeds=0,1+run.optim.epochs=8"
    assert variant_name(["methods.modality_dropout={p: 0.5}"]) == "methods.modality_dropout=p-0.5"  # docs/compare.md
    assert variant_name(["methods={joint: {}, dgl: {alpha: 4}}"]) == "methods=joint,dgl-alpha-4"
    long = variant_name([f"sweep={{dagr.tau: [{', '.join(str(t / 100) for t in range(30))}]}}"])
    assert len(long) == 69 and long.startswith("sweep=dagr.tau-0.0,0.01,")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` but the variants' (build/) with its digest."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] != "build"}


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A copy of the committed results and README standing in for the checkout's (a failing test must not
    write over the real ones)."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "results", copy / "results")
    shutil.copy(ROOT / "README.md", copy / "README.md")
    monkeypatch.setattr(targets, "COMMITTED_RESULTS", copy / "results")
    monkeypatch.setattr(targets, "COMMITTED_README", copy / "README.md")
    monkeypatch.setattr(targets, "VARIANTS", copy / "build" / "results")
    return copy


def test_a_subset_run_leaves_the_committed_results_and_the_readme_byte_identical(checkout, tmp_path, capsys):
    committed = snapshot(checkout)
    args = [str(AVDIGITS), "--runs", str(tmp_path / "runs"), "--results", str(checkout / "results"),
            "--readme", str(checkout / "README.md")]  # what `make reproduce` passes
    assert main(["reproduce", *args, *SUBSET, "--no-progress"]) == 0
    variant = checkout / "build" / "results" / VARIANT
    assert {p.name for p in variant.iterdir()} >= {"table.md", "per_seed.csv", "grid_time.json"}
    assert snapshot(checkout) == committed
    out = capsys.readouterr().out
    assert f"note: a variant of {AVDIGITS} (seeds=[0] methods={{joint: {{}}}}" in out
    assert f"{checkout / 'results' / 'avdigits'}/ and {checkout / 'README.md'} hold the grid as committed" in out
    assert "## Validation-selected" in out  # the table it wrote

    # `make tables SEEDS=2` with the same ARGS: a seed without runs is an error, and nothing is written
    other_seeds = [*SUBSET, "--set", "seeds=[0, 1]"]
    assert main(["tables", *args, *other_seeds]) == 2
    err = capsys.readouterr().err
    assert "1 of the 2 runs of this grid have no record" in err and "joint-s1" in err and "--partial" in err
    assert snapshot(checkout) == committed
    assert not any(p.name.startswith("avdigits+seeds=0,1") for p in variant.parent.iterdir())

    assert main(["tables", *args, *SUBSET]) == 0  # the same seeds and overrides: rendered again
    assert main(["tables", *args, *SUBSET, "--overwrite-committed"]) == 0  # named: written over
    changed = {k for k, v in snapshot(checkout).items() if committed.get(k, v) != v}
    assert {"results/avdigits/table.md", "results/avdigits/per_seed.csv"} <= changed  # the README shows the powered grid


def test_the_committed_grid_with_runs_missing_is_an_error_unless_partial(checkout, tmp_path, capsys):
    args = [str(AVDIGITS), "--runs", str(tmp_path / "runs"), "--results", str(checkout / "results")]
    assert main(["tables", *args]) == 2  # a fresh checkout: no runs at all, and the committed tables stay
    assert "54 of the 54 runs of this grid have no record" in capsys.readouterr().err
    assert snapshot(checkout / "results") == snapshot(ROOT / "results")
    assert main(["tables", *args, "--partial"]) == 0
    assert "- MISSING: 54 runs" in (checkout / "results" / "avdigits" / "table.md").read_text()
