"""Statistics for comparing arms on few seeds: pure functions of numbers (numpy, scipy.stats).

* :func:`paired_comparison` — per-seed differences ``d_s`` (a seed fixes initialisation, data order,
  augmentation and frame sampling for both arms, so the runs of one seed are a pair): mean Δ, 95%
  paired-t confidence interval and two-sided paired-t p, the exact two-sided sign-flip permutation
  p-value (descriptive: its floor is ``2 / 2**n``, 0.25 for 3 seeds, so it can never survive a
  correction), and the seeds that improve.
* :func:`holm` / :func:`family_verdicts` — a table's verdicts as one family: Holm's step-down
  adjustment of the paired-t p-values (the family-wise error rate, valid under any dependence between
  the cells, which share seeds and test samples), then "better"/"worse" where the adjusted p is at most
  0.05, else "within noise".
* :func:`welch_interval` — an unpaired difference from means, stds and counts (published numbers
  against ours).
* :func:`sample_counts` — McNemar-style counts of test samples fixed and broken, pooled over seeds,
  with an exact binomial p-value.
* :func:`seeds_needed` / :func:`detectable_difference` — the power of the paired design.
* :func:`t_quantile`, :func:`t_two_sided_p` — Student t, from scipy.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
ALPHA = 0.05  # a verdict's family-wise error rate (1 − LEVEL)
MAX_SIGN_FLIP_PAIRS = 20  # 2**20 sign patterns, enumerated exactly
VERDICTS = ("better", "worse", "within noise")


# --- Student t (scipy) -----------------------------------------------------------------------------

def t_quantile(p: float, df: float) -> float:
    """The x with P(T <= x) = p for Student's t with ``df`` > 0 degrees of freedom (``math.inf``: the normal)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    return float(stats.norm.ppf(p) if math.isinf(df) else stats.t.ppf(p, df))


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p of a t statistic: P(|T| >= |t|)."""
    return float(2 * stats.t.sf(abs(t), df))


# --- paired comparison over seeds ----------------------------------------------------------------

def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact two-sided p of the sign-flip permutation test: the share of the 2**n sign patterns
    whose |sum| is at least the observed |sum| (ties count, so the floor is 2 / 2**n)."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no differences to test")
    if n > MAX_SIGN_FLIP_PAIRS:
        raise ValueError(f"{n} pairs: the exact sign-flip test enumerates at most {MAX_SIGN_FLIP_PAIRS}")
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    sums = np.abs(signs @ d)
    observed = abs(d.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))  # sums equal up to rounding are ties
    return float(np.mean(sums >= observed - tolerance))


@dataclass(frozen=True)
class PairedComparison:
    """Δ over seed pairs (treated − baseline, in the unit of the inputs)."""

    differences: tuple[float, ...]
    mean: float
    std: float  # sample std of the differences (ddof=1), at least the resolution; NaN for one pair
    ci_low: float  # 95% paired-t interval; infinite for one pair
    ci_high: float
    t_p_value: float  # two-sided paired-t p; NaN for one pair (no test)
    p_value: float  # exact two-sided sign-flip permutation p
    p_floor: float  # the smallest p the test can give with this many pairs: 2 / 2**n (1 for n = 1)
    improved: int  # pairs with d > 0
    ties: int  # pairs with d == 0

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def share_improved(self) -> float:
        return self.improved / self.n


def paired_comparison(differences: Sequence[float], level: float = LEVEL, resolution: float = 0.0) -> PairedComparison:
    """Mean, paired-t interval and p, and sign-flip p of per-seed differences ``d_s``.

    ``resolution``: the smallest difference the measurement can show (an accuracy on N test samples
    moves in steps of 1/N). The differences' std is taken as at least that, so that a few equal
    differences (std 0) do not make an infinitely sure test."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no seed pairs: both arms need finished runs of at least one common seed")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"non-finite differences {d.tolist()}")
    mean = float(d.mean())
    if n == 1:
        std, low, high, t_p = math.nan, -math.inf, math.inf, math.nan  # one pair says nothing about the noise
    else:
        std = max(float(d.std(ddof=1)), resolution)
        se = std / math.sqrt(n)
        half = t_quantile(0.5 + level / 2, n - 1) * se
        low, high = mean - half, mean + half
        t_p = t_two_sided_p(mean / se, n - 1) if se > 0 else (1.0 if mean == 0 else math.nan)  # no spread: no test
    return PairedComparison(differences=tuple(float(x) for x in d), mean=mean, std=std, ci_low=low, ci_high=high,
                            t_p_value=t_p, p_value=sign_flip_p_value(d), p_floor=min(1.0, 2.0 / 2 ** n),
                            improved=int((d > 0).sum()), ties=int((d == 0).sum()))


# --- a table's family of verdicts ----------------------------------------------------------------

def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: sorted ascending, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (m − j + 1) p_(j))``. NaN entries (no test) are not in the family and stay NaN;
    tied p-values get the same adjusted value."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m, running = len(tested), 0.0
    adjusted = [math.nan] * len(p_values)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Verdict:
    adjusted_p: float  # Holm-adjusted over the family; NaN without a test
    text: str  # "better" | "worse" | "within noise" | "no test"
    family_size: int  # the tests the family holds


def family_verdicts(means: Sequence[float], p_values: Sequence[float], alpha: float = ALPHA) -> list[Verdict]:
    """The verdicts of one family (one printed table): for each test, "better"/"worse" (by the sign of its
    mean difference) where its Holm-adjusted p is at most ``alpha``, else "within noise"; a NaN p (one
    seed pair, or no spread to test) gives "no test"."""
    adjusted = holm(p_values)
    size = sum(not math.isnan(p) for p in p_values)
    out = []
    for mean, p in zip(means, adjusted):
        if math.isnan(p):
            text = "no test"
        elif p <= alpha and mean != 0:
            text = "better" if mean > 0 else "worse"
        else:
            text = "within noise"
        out.append(Verdict(p, text, size))
    return out


def paired_verdicts(comparisons: Sequence[PairedComparison], alpha: float = ALPHA) -> list[Verdict]:
    """:func:`family_verdicts` of paired comparisons (or Welch intervals), on their t-test p-values."""
    return family_verdicts([c.mean for c in comparisons], [c.t_p_value for c in comparisons], alpha)


def judge_table(table: pd.DataFrame) -> pd.DataFrame:
    """A printed table whose Δ cells hold :class:`PairedComparison` or :class:`WelchInterval` objects,
    with those cells judged as one family and written as "Δ [interval] verdict"."""
    pending = [v for v in table.to_numpy().ravel() if isinstance(v, (PairedComparison, WelchInterval))]
    texts = {id(c): interval_cell(c.mean, c.ci_low, c.ci_high, v.text)
             for c, v in zip(pending, paired_verdicts(pending))}
    return table.map(lambda v: texts[id(v)] if isinstance(v, (PairedComparison, WelchInterval)) else v)


# --- unpaired comparison ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WelchInterval:
    mean: float  # mean_a − mean_b
    ci_low: float
    ci_high: float
    df: float  # Welch–Satterthwaite degrees of freedom (NaN when both sides have no spread)
    t_p_value: float  # two-sided Welch-t p (NaN without a spread on either side: no test)


def welch_interval(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int,
                   level: float = LEVEL) -> WelchInterval:
    """Interval for mean_a − mean_b from two independent samples' means, sample stds and sizes.

    Pass std 0 for a number given without spread (a published number without std): it enters as
    exact. A NaN std (one seed, no spread measured) makes the interval infinite."""
    if n_a < 1 or n_b < 1:
        raise ValueError(f"sample sizes must be >= 1, got {n_a} and {n_b}")
    diff = mean_a - mean_b
    parts = [s * s / n for s, n in ((std_a, n_a), (std_b, n_b))]
    if any(math.isnan(p) for p in parts):
        return WelchInterval(diff, -math.inf, math.inf, math.nan, math.nan)
    variance = sum(parts)
    if variance == 0:
        return WelchInterval(diff, diff, diff, math.nan, math.nan)
    df = variance ** 2 / sum(p * p / (n - 1) for p, n in zip(parts, (n_a, n_b)) if p > 0)
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(variance)
    return WelchInterval(diff, diff - half, diff + half, df, t_two_sided_p(diff / math.sqrt(variance), df))


# --- pairing by test sample ------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleCounts:
    """Test samples the treated arm gets right and the baseline wrong (fixed), and the reverse
    (broken), summed over seed pairs; ``p_value``: exact two-sided binomial test of fixed against
    broken at 1/2 (McNemar's exact test; pooled over seeds the samples repeat, so read it as
    descriptive)."""

    fixed: int
    broken: int
    pairs: int  # seed pairs pooled
    samples: int  # test samples per pair
    p_value: float


def binomial_two_sided_p(successes: int, trials: int) -> float:
    """Exact two-sided p of ``successes`` out of ``trials`` against probability 1/2."""
    return 1.0 if trials == 0 else float(stats.binomtest(successes, trials, 0.5).pvalue)


def sample_counts(correct_treated: Sequence[np.ndarray], correct_baseline: Sequence[np.ndarray]) -> SampleCounts:
    """Pool per-sample correctness (one boolean array per seed pair, equal lengths) into counts."""
    if len(correct_treated) != len(correct_baseline) or not correct_treated:
        raise ValueError("give one treated and one baseline correctness array per seed pair")
    fixed = broken = 0
    sizes = set()
    for treated, base in zip(correct_treated, correct_baseline):
        treated, base = np.asarray(treated, dtype=bool), np.asarray(base, dtype=bool)
        if treated.shape != base.shape:
            raise ValueError(f"a pair's predictions cover {treated.shape} and {base.shape} samples")
        sizes.add(len(treated))
        fixed += int((treated & ~base).sum())
        broken += int((base & ~treated).sum())
    if len(sizes) != 1:
        raise ValueError(f"seed pairs evaluated different numbers of samples: {sorted(sizes)}")
    return SampleCounts(fixed, broken, len(correct_treated), sizes.pop(), binomial_two_sided_p(fixed, fixed + broken))


def binomial_se(accuracy: float, samples: int) -> float:
    """Standard error of one accuracy measured on ``samples`` independent test samples (same unit)."""
    if samples < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"need 0 <= accuracy <= 1 and samples >= 1, got {accuracy}, {samples}")
    return math.sqrt(accuracy * (1.0 - accuracy) / samples)


# --- power -----------------------------------------------------------------------------------------

def detectable_difference(seeds: int, pair_std: float, level: float = LEVEL, power: float = 0.8) -> float:
    """The smallest |Δ| the paired-t test on ``seeds`` pairs detects with probability ``power``,
    (t_{(1+level)/2, n−1} + t_{power, n−1}) · s / √n (the usual t approximation of the power)."""
    if seeds < 2:
        raise ValueError("a paired interval needs at least 2 seeds")
    df = seeds - 1
    return (t_quantile(0.5 + level / 2, df) + t_quantile(power, df)) * pair_std / math.sqrt(seeds)


def seeds_needed(delta: float, pair_std: float, level: float = LEVEL, power: float = 0.8,
                 max_seeds: int = 10_000) -> int:
    """The fewest seed pairs whose :func:`detectable_difference` is at most |delta|."""
    if delta == 0 or pair_std < 0:
        raise ValueError(f"need a non-zero delta and a non-negative std, got {delta}, {pair_std}")
    for seeds in range(2, max_seeds + 1):
        if detectable_difference(seeds, pair_std, level, power) <= abs(delta):
            return seeds
    raise ValueError(f"more than {max_seeds} seeds needed to detect {delta} with a per-pair std of {pair_std}")


# --- table cells -----------------------------------------------------------------------------------

def interval_cell(mean: float, ci_low: float, ci_high: float, verdict_text: str) -> str:
    """A table cell: "+1.00 [-0.52, +2.52] within noise" (no interval from a single seed)."""
    interval = "no CI: 1 seed" if math.isinf(ci_low) else f"{ci_low:+.2f}, {ci_high:+.2f}"
    return f"{mean:+.2f} [{interval}] {verdict_text}"
