"""The statistics module against hand-computed values (t quantiles from printed tables)."""
import math

import numpy as np
import pytest

from benchmarks.report.statistics import (detectable_difference, paired_comparison, sample_counts, seeds_needed,
                                   sign_flip_p_value, t_cdf, t_quantile, welch_interval)

# Two-sided 95% quantiles t_{0.975, df}, df = 1..30, as printed in statistics tables (3 decimals).
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


@pytest.mark.parametrize("df", range(1, 31))
def test_t_quantile_matches_the_printed_table(df):
    assert t_quantile(0.975, df) == pytest.approx(T_975[df - 1], abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-T_975[df - 1], abs=5e-4)


@pytest.mark.parametrize("p", [0.6, 0.8, 0.9, 0.975, 0.999])
def test_t_quantile_closed_forms(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)  # Cauchy
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(p, math.inf) == pytest.approx({0.6: 0.2533471, 0.8: 0.8416212, 0.9: 1.2815516,
                                                     0.975: 1.9599640, 0.999: 3.0902323}[p], abs=1e-6)
    assert t_cdf(t_quantile(p, 7.5), 7.5) == pytest.approx(p, abs=1e-10)  # fractional df (Welch)


def test_three_seeds():
    c = paired_comparison([1.0, 2.0, 3.0])
    # mean 2, sd 1, half-width 4.302653 / sqrt(3) = 2.484138
    assert (c.n, c.mean, c.std) == (3, 2.0, 1.0)
    assert c.ci_low == pytest.approx(2 - 2.484138, abs=1e-6) and c.ci_high == pytest.approx(2 + 2.484138, abs=1e-6)
    # |±1±2±3| >= 6 for the all-plus and all-minus patterns only: 2/8
    assert c.p_value == 0.25 and c.p_floor == 0.25
    assert (c.improved, c.ties, c.share_improved, c.verdict) == (3, 0, 1.0, "within noise")


def test_five_seeds_consistent_gain_is_better_but_at_the_p_floor():
    c = paired_comparison([0.5, 1.0, 1.5, 2.0, 2.5])
    # sd sqrt(2.5 / 4) = 0.790569; half-width 2.776445 * 0.790569 / sqrt(5) = 0.981622
    assert c.std == pytest.approx(0.790569, abs=1e-6)
    assert (c.ci_low, c.ci_high) == pytest.approx((1.5 - 0.981622, 1.5 + 0.981622), abs=1e-6)
    assert c.verdict == "better" and c.p_value == 0.0625 == c.p_floor


def test_five_seeds_mixed_signs():
    c = paired_comparison([2.0, -1.0, 3.0, 1.0, -1.0])
    # mean 0.8, sd sqrt(12.8 / 4) = 1.788854, half-width 2.776445 * 1.788854 / sqrt(5) = 2.221156
    assert c.mean == pytest.approx(0.8) and c.std == pytest.approx(1.788854, abs=1e-6)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.8 - 2.221156, 0.8 + 2.221156), abs=1e-6)
    # magnitudes {3,2,1,1,1} (total 8): |8 - 2m| >= 4 iff the flipped magnitudes sum m <= 2 or >= 6:
    # 8 subsets each side of 32
    assert c.p_value == 0.5 and (c.improved, c.verdict) == (3, "within noise")


def test_ties_do_not_count_as_improvements():
    c = paired_comparison([0.0, 0.0, 1.0])
    assert (c.improved, c.ties) == (1, 2) and c.share_improved == pytest.approx(1 / 3)
    assert c.p_value == 1.0  # every sign pattern gives |sum| = 1
    assert c.std == pytest.approx(math.sqrt(1 / 3))


def test_zero_variance():
    same = paired_comparison([0.5, 0.5, 0.5])
    assert (same.std, same.ci_low, same.ci_high, same.verdict, same.p_value) == (0.0, 0.5, 0.5, "better", 0.25)
    nothing = paired_comparison([0.0, 0.0, 0.0])
    assert (nothing.ci_low, nothing.ci_high, nothing.verdict, nothing.p_value) == (0.0, 0.0, "within noise", 1.0)


def test_one_pair_says_nothing_about_the_noise():
    c = paired_comparison([2.0])
    assert c.mean == 2.0 and math.isnan(c.std)
    assert (c.ci_low, c.ci_high, c.verdict) == (-math.inf, math.inf, "within noise")
    assert c.p_value == 1.0 == c.p_floor


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no seed pairs"):
        paired_comparison([])
    with pytest.raises(ValueError, match="non-finite"):
        paired_comparison([1.0, float("nan")])
    with pytest.raises(ValueError, match="at most 20"):
        sign_flip_p_value(np.ones(21))


def test_welch_interval():
    # equal std 1 and n 3: variance 2/3, df = (2/3)^2 / (2 * (1/3)^2 / 2) = 4, t = 2.776445
    w = welch_interval(80.0, 1.0, 3, 77.65, 1.0, 3)
    assert w.df == pytest.approx(4.0) and w.mean == pytest.approx(2.35)
    assert (w.ci_low, w.ci_high) == pytest.approx((2.35 - 2.776445 * math.sqrt(2 / 3),
                                                   2.35 + 2.776445 * math.sqrt(2 / 3)), abs=1e-5)
    assert w.verdict == "better"
    # a published number without std is exact: the one-sample interval, df 2
    exact = welch_interval(78.0, 1.0, 3, 78.16, 0.0, 3)
    assert exact.df == pytest.approx(2.0) and exact.ci_high == pytest.approx(-0.16 + 4.302653 / math.sqrt(3), abs=1e-5)
    assert exact.verdict == "within noise"
    assert welch_interval(70.0, float("nan"), 1, 78.0, 1.0, 3).verdict == "within noise"


def test_sample_counts_pool_over_seeds():
    t = np.array([True, True, False, True])
    b = np.array([False, True, True, False])
    one = sample_counts([t], [b])
    assert (one.fixed, one.broken, one.pairs, one.samples) == (2, 1, 1, 4)
    assert one.p_value == 1.0  # 2 * (C(3,0) + C(3,1)) / 2^3 capped at 1
    # pair 1: 6 fixed, 0 broken; pair 2: 3 fixed, 1 broken -> 9 vs 1: 2 * (1 + 10) / 1024
    pair1 = (np.array([1] * 6 + [0] * 4, bool), np.zeros(10, bool))
    pair2 = (np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], bool), np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0], bool))
    pooled = sample_counts([pair1[0], pair2[0]], [pair1[1], pair2[1]])
    assert (pooled.fixed, pooled.broken, pooled.pairs) == (9, 1, 2)
    assert pooled.p_value == pytest.approx(22 / 1024)
    with pytest.raises(ValueError, match="different numbers of samples"):
        sample_counts([np.ones(3, bool), np.ones(4, bool)], [np.ones(3, bool), np.ones(4, bool)])


def test_seeds_needed_matches_the_standard_paired_power_table():
    # paired t, two-sided 0.05, power 0.8: effect size 1 needs 10 pairs, 0.5 needs 34 (G*Power values)
    assert seeds_needed(0.5, 0.5) == 10 and seeds_needed(-0.5, 1.0) == 34
    # (t_.975,9 + t_.8,9) / sqrt(10) = (2.262157 + 0.883404) / 3.162278
    assert detectable_difference(10, 1.0) == pytest.approx(0.994711, abs=1e-5)
    with pytest.raises(ValueError, match="non-zero delta"):
        seeds_needed(0.0, 1.0)
