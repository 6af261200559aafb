"""The seed plan of a powered grid against hand-computed half-widths (t quantiles from printed tables)."""
import pandas as pd
import pytest

from benchmarks.report.seed_plan import half_width, pilot_differences, plan, seeds_for


def test_half_width_and_seeds_by_hand():
    assert half_width(1.0, 8) == pytest.approx(2.364624 / 8 ** 0.5, abs=1e-6)
    # sd 0.58: 7 seeds give 2.446912 · 0.58 / sqrt 7 = 0.536, 8 give 2.364624 · 0.58 / sqrt 8 = 0.485
    assert seeds_for(0.58, 0.5, 30) == 8
    assert seeds_for(10.0, 1.0, 30) is None  # 30 seeds give 2.045 · 10 / sqrt 30 = 3.73


def test_plan_pools_the_methods_in_reach_and_reports_the_others():
    differences = {"a": [1.0, 2.0, 3.0], "b": [0.0, 0.2, 0.4], "c": [0.0, 10.0, 20.0]}  # sd 1, 0.2, 10
    result = plan(differences, {"a": 1.0, "b": 1.0, "c": 1.0}, max_seeds=30)
    # c is out of reach on its own sd; pooled over a and b: sqrt((1 + 0.04) / 2) = 0.7211
    assert result.pooled_sd == pytest.approx((1.04 / 2) ** 0.5)
    # a needs 7 (2.446912 / sqrt 7 = 0.925; 6 give 1.049), b planned with 0.7211 needs 5
    assert result.seeds == 7
    by_method = {p.method: p for p in result.methods}
    assert by_method["b"].planning_sd == pytest.approx(0.7211, abs=1e-4) and by_method["b"].reachable
    assert not by_method["c"].reachable  # reported with the half-width it gets at the chosen 7 seeds
    assert by_method["c"].half_width == pytest.approx(half_width(10.0, 7))


def test_pilot_differences_pair_the_arms_by_seed_in_points():
    rows = [{"method": m, "arm": arm, "seed": seed, "best_val_test_acc": acc}
            for m, arm, seed, acc in [("dgl", "none", 0, 0.90), ("dgl", "dagr", 0, 0.91), ("dgl", "none", 1, 0.92),
                                      ("dgl", "dagr", 1, 0.90), ("joint", "none", 0, 0.8), ("unimodal", "none", 0, 0.7)]]
    differences = pilot_differences(pd.DataFrame(rows))
    assert list(differences) == ["dgl"]  # joint has no DAGR run; references are not compared
    assert differences["dgl"] == pytest.approx([1.0, -2.0])
