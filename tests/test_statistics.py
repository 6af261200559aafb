"""The statistics module against hand-computed values (t quantiles from printed tables)."""
import math

import numpy as np
import pytest

from benchmarks.report.statistics import (detectable_difference, family_verdicts, holm, paired_comparison,
                                          paired_verdicts, sample_counts, seeds_needed, sign_flip_p_value,
                                          t_two_sided_p, t_quantile, welch_interval)

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
    assert t_two_sided_p(t_quantile(p, 7.5), 7.5) == pytest.approx(2 * (1 - p), abs=1e-10)  # fractional df (Welch)


def test_two_sided_t_p_closed_form_at_two_degrees_of_freedom():
    # df 2: P(|T| >= t) = 1 − t / sqrt(t² + 2)
    for t in (0.5, 2.0, 3.4641016):
        assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-12)
        assert t_two_sided_p(-t, 2) == t_two_sided_p(t, 2)


def test_three_seeds():
    c = paired_comparison([1.0, 2.0, 3.0])
    # mean 2, sd 1, half-width 4.302653 / sqrt(3) = 2.484138
    assert (c.n, c.mean, c.std) == (3, 2.0, 1.0)
    assert c.ci_low == pytest.approx(2 - 2.484138, abs=1e-6) and c.ci_high == pytest.approx(2 + 2.484138, abs=1e-6)
    # |±1±2±3| >= 6 for the all-plus and all-minus patterns only: 2/8
    assert c.p_value == 0.25 and c.p_floor == 0.25
    assert (c.improved, c.ties, c.share_improved) == (3, 0, 1.0)
    # t = 2 / (1 / sqrt 3) = 3.464102, df 2: p = 1 − t / sqrt(t² + 2) = 1 − 3.464102 / 3.741657
    assert c.t_p_value == pytest.approx(0.074180, abs=1e-6)


def test_five_seeds_consistent_gain_is_better_but_at_the_p_floor():
    c = paired_comparison([0.5, 1.0, 1.5, 2.0, 2.5])
    # sd sqrt(2.5 / 4) = 0.790569; half-width 2.776445 * 0.790569 / sqrt(5) = 0.981622
    assert c.std == pytest.approx(0.790569, abs=1e-6)
    assert (c.ci_low, c.ci_high) == pytest.approx((1.5 - 0.981622, 1.5 + 0.981622), abs=1e-6)
    assert c.p_value == 0.0625 == c.p_floor
    assert c.t_p_value < 0.05  # the interval excludes 0, so the two-sided test rejects at 0.05


def test_five_seeds_mixed_signs():
    c = paired_comparison([2.0, -1.0, 3.0, 1.0, -1.0])
    # mean 0.8, sd sqrt(12.8 / 4) = 1.788854, half-width 2.776445 * 1.788854 / sqrt(5) = 2.221156
    assert c.mean == pytest.approx(0.8) and c.std == pytest.approx(1.788854, abs=1e-6)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.8 - 2.221156, 0.8 + 2.221156), abs=1e-6)
    # magnitudes {3,2,1,1,1} (total 8): |8 - 2m| >= 4 iff the flipped magnitudes sum m <= 2 or >= 6:
    # 8 subsets each side of 32
    assert c.p_value == 0.5 and c.improved == 3 and c.t_p_value > 0.05


def test_ties_do_not_count_as_improvements():
    c = paired_comparison([0.0, 0.0, 1.0])
    assert (c.improved, c.ties) == (1, 2) and c.share_improved == pytest.approx(1 / 3)
    assert c.p_value == 1.0  # every sign pattern gives |sum| = 1
    assert c.std == pytest.approx(math.sqrt(1 / 3))


def test_zero_variance_has_no_test_unless_the_resolution_gives_one():
    same = paired_comparison([0.5, 0.5, 0.5])
    assert (same.std, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.5, 0.5, 0.25) and math.isnan(same.t_p_value)
    assert paired_comparison([0.0, 0.0, 0.0]).t_p_value == 1.0  # no difference at all
    # floored at one test sample (0.1 point): t = 0.5 / (0.1 / sqrt 3) = 8.660254, df 2
    floored = paired_comparison([0.5, 0.5, 0.5], resolution=0.1)
    assert floored.std == 0.1 and floored.t_p_value == pytest.approx(1 - 8.660254 / math.sqrt(77), abs=1e-6)
    assert paired_comparison([0.2, 0.4, 0.3], resolution=0.1).std == pytest.approx(0.1)  # std 0.1 exactly
    assert paired_comparison([0.0, 0.3, 0.9], resolution=0.1).std == pytest.approx(math.sqrt(0.21))


def test_one_pair_says_nothing_about_the_noise():
    c = paired_comparison([2.0])
    assert c.mean == 2.0 and math.isnan(c.std) and math.isnan(c.t_p_value)
    assert (c.ci_low, c.ci_high) == (-math.inf, math.inf)
    assert c.p_value == 1.0 == c.p_floor


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, max(0.06, 1·0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02, 0.02, 0.5]) == pytest.approx([0.06, 0.06, 0.5])  # ties share one adjusted value
    adjusted = holm([math.nan, 0.01, 0.02])  # no test: outside the family, which has 2 members
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.02, 0.02])
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1, and monotone
    assert holm([0.04]) == [0.04] and holm([]) == []


def test_family_verdicts_read_the_adjusted_p_and_the_sign():
    verdicts = family_verdicts([2.0, -1.0, 0.5, 3.0, 0.0], [0.001, 0.004, 0.5, math.nan, 0.0001])
    # family of 4: 0.0001·4, 0.001·3, 0.004·2, 0.5·1
    assert [v.text for v in verdicts] == ["better", "worse", "within noise", "no test", "within noise"]
    assert [v.adjusted_p for v in verdicts[:3]] == pytest.approx([0.003, 0.008, 0.5])
    assert {v.family_size for v in verdicts} == {4}
    # alone each of 24 cells at p = 0.01 would be "better"; as one family none is
    assert {v.text for v in family_verdicts([1.0] * 24, [0.01] * 24)} == {"within noise"}


def test_paired_verdicts_of_a_three_seed_family():
    cells = [paired_comparison(d, resolution=0.1) for d in ([-0.5, -0.6, -0.6], [0.1, -0.2, 0.4], [0.3])]
    # sd 0.0577 floored to 0.1: t = −0.566667 / (0.1 / sqrt 3) = −9.814955, p = 1 − 9.814955 / sqrt(t² + 2)
    t = 0.566667 / (0.1 / math.sqrt(3))
    assert cells[0].t_p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-6)  # 0.010222
    # sd 0.3, t = 0.1 / (0.3 / sqrt 3) = 0.577350
    assert cells[1].t_p_value == pytest.approx(1 - 0.577350 / math.sqrt(0.333333 + 2), abs=1e-6)
    verdicts = paired_verdicts(cells)
    assert verdicts[0].adjusted_p == pytest.approx(2 * cells[0].t_p_value) and verdicts[0].family_size == 2
    assert [v.text for v in verdicts] == ["worse", "within noise", "no test"]
    # the same first cell in a family of 24 would no longer be a verdict
    assert family_verdicts([cells[0].mean] * 24, [cells[0].t_p_value] * 24)[0].text == "within noise"


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
    assert w.t_p_value < 0.05
    # a published number without std is exact: the one-sample interval, df 2
    exact = welch_interval(78.0, 1.0, 3, 78.16, 0.0, 3)
    assert exact.df == pytest.approx(2.0) and exact.ci_high == pytest.approx(-0.16 + 4.302653 / math.sqrt(3), abs=1e-5)
    t = 0.16 / (1 / math.sqrt(3))
    assert exact.t_p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-9)
    assert math.isnan(welch_interval(70.0, float("nan"), 1, 78.0, 1.0, 3).t_p_value)


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
