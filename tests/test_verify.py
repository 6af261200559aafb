"""make verify's verdicts on committed fixtures: identical, DIFFERENT (bit-comparable hardware), consistent
and INCONSISTENT (other hardware), stale; the prediction interval by hand; and verify() end to end."""
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.core import numerics
from benchmarks.grid.config import load_grid
from benchmarks.run.verify import compare, prediction_interval, verify

COMMITTED = Path(__file__).parent / "data" / "verify" / "per_seed.csv"
INTEL = {"hw_cpu": "Intel(R) Xeon(R) Processor", "hw_vendor": "GenuineIntel", "hw_isa": "avx2 fma avx512f amx_tile"}


def committed() -> pd.DataFrame:
    return pd.read_csv(COMMITTED)


def fresh(**values) -> pd.DataFrame:
    """The committed seed-0 run as re-trained, with ``values`` changed."""
    row = committed().iloc[[0]].copy()
    for key, value in values.items():
        row[key] = value
    return row


def spread() -> pd.DataFrame:
    """Every committed seed of the fresh run's cell."""
    return committed().assign(cell="joint0")


def test_prediction_interval_by_hand():
    values = [0.927, 0.910, 0.921, 0.918, 0.915]  # mean 0.9182, sd 0.0063797 (ddof 1)
    low, high = prediction_interval(values, level=0.05 / 3)
    half = 3.960786 * 0.0063797 * math.sqrt(1 + 1 / 5)  # t(1 − 0.05/6, 4) from a table
    assert (low, high) == pytest.approx((0.9182 - half, 0.9182 + half), abs=1e-5)
    assert prediction_interval([0.5, 0.5], 0.05) == pytest.approx((0.5 - 12.7062 * 0.001 * math.sqrt(1.5),
                                                                  0.5 + 12.7062 * 0.001 * math.sqrt(1.5)), abs=1e-6)
    assert prediction_interval([0.9], 0.05) == (0.0, 1.0)  # one seed tells no spread


def test_identical_on_any_machine():
    verdict = compare(committed(), fresh(**INTEL), spread())
    assert verdict.outcome == "identical" and verdict.exit_code == 0
    assert "Intel(R) Xeon(R) Processor" in verdict.lines[1] and "AMD EPYC" in verdict.lines[0]


def test_bit_comparable_hardware_that_computes_other_bits_is_different():
    verdict = compare(committed(), fresh(best_val_test_acc=0.926, last_test_acc=0.926), spread())
    assert verdict.outcome == "DIFFERENT" and verdict.exit_code == 1
    assert any("best_val_test_acc by up to 0.001" in line for line in verdict.lines)


def test_other_hardware_inside_the_spread_is_consistent():
    verdict = compare(committed(), fresh(**INTEL, best_val_test_acc=0.935), spread())  # another vendor
    assert verdict.outcome == "consistent" and verdict.exit_code == 0
    assert "not bit-comparable" in verdict.lines[-1] and "all 3 values" in verdict.lines[-1]
    assert "GenuineIntel" in verdict.lines[-1] and "AuthenticAMD" in verdict.lines[-1]
    native = compare(committed(), fresh(hw_numerics="native", best_val_test_acc=0.935), spread())
    assert native.outcome == "consistent"  # the same machine outside the portable mode


def test_other_hardware_outside_the_spread_is_inconsistent():
    verdict = compare(committed(), fresh(**INTEL, best_val_test_acc=0.95), spread())
    assert verdict.outcome == "INCONSISTENT" and verdict.exit_code == 1
    assert [line for line in verdict.lines if "OUTSIDE" in line] == [
        "  OUTSIDE joint-s0 best_val_test_acc 0.9500 vs [0.8905, 0.9459] from 5 committed seeds"]


def test_a_run_missing_from_the_committed_results_is_stale():
    verdict = compare(committed(), fresh(run_id="other"), spread())
    assert verdict.outcome == "STALE" and verdict.exit_code == 1


def test_the_bit_comparable_class_is_one_vendor_in_the_portable_mode_on_x86_64_with_avx2():
    portable = {"numerics": "portable", "machine": "x86_64", "isa": "avx2 fma", "pinned": {"MKL_CBWR": "AVX2"},
                "vendor": "AuthenticAMD"}
    assert numerics.bit_class(portable) == numerics.bit_class({**portable, "isa": ["avx2", "avx512f"]})
    assert numerics.bit_class(portable) == numerics.bit_class({**portable, "vendor": None, "cpu": "AMD EPYC"})
    assert numerics.bit_class({**portable, "vendor": "GenuineIntel"}) != numerics.bit_class(portable)
    assert numerics.bit_class({**portable, "pinned": "MKL_CBWR=COMPATIBLE"}) != numerics.bit_class(portable)
    assert numerics.bit_class({**portable, "numerics": "native"}) is None
    assert numerics.bit_class({**portable, "isa": "neon"}) is None


def test_verify_retrains_its_sample_and_finds_it_identical_then_stale(tmp_path):
    """End to end on the debug grid: commit a sample's per-seed file, verify re-trains it elsewhere."""
    from benchmarks.__main__ import main

    args = ["--set", "run.optim.epochs=1", "--set", "seeds=[0]"]
    config = "benchmarks/configs/debug.yaml"
    assert main(["reproduce", config, "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
                 "--no-progress", *args]) == 0
    grid = load_grid(config, args[1::2])
    verdict = verify(grid, "debug", tmp_path / "results", tmp_path / "fresh", "joint", jobs=1)
    assert verdict.outcome == "identical", verdict.lines
    changed = load_grid(config, [*args[1::2], "run.optim.lr=0.01"])
    assert verify(changed, "debug", tmp_path / "results", tmp_path / "fresh", "joint", jobs=1).outcome == "STALE"
    # each verification trains into a folder of its own: runs finished before are never resumed
    first, second = sorted((tmp_path / "fresh").iterdir())
    assert verdict.lines[0] == f"re-trained in {first}"
    assert all(len(list(folder.rglob("done"))) == 4 for folder in (first, second)), (first, second)
