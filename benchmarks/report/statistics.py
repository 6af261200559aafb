"""Statistics for comparing arms on few seeds: pure functions of numbers, numpy and the standard library.

* :func:`paired_comparison` — per-seed differences ``d_s`` (a seed fixes initialisation, data order,
  augmentation and frame sampling for both arms, so the runs of one seed are a pair): mean Δ, 95%
  paired-t confidence interval, exact two-sided sign-flip permutation p-value (its floor is
  ``2 / 2**n``: 0.25 for 3 seeds, 0.0625 for 5), the seeds that improve, and a verdict: "better" or
  "worse" when the interval excludes 0, else "within noise".
* :func:`welch_interval` — an unpaired difference from means, stds and counts (published numbers
  against ours).
* :func:`sample_counts` — McNemar-style counts of test samples fixed and broken, pooled over seeds,
  with an exact binomial p-value.
* :func:`seeds_needed` / :func:`detectable_difference` — the power of the paired design.
* :func:`t_quantile` — Student-t quantiles (any real df) from the regularized incomplete beta function.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
MAX_SIGN_FLIP_PAIRS = 20  # 2**20 sign patterns, enumerated exactly
VERDICTS = ("better", "worse", "within noise")


# --- Student t ------------------------------------------------------------------------------------

def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's evaluation of the continued fraction of the incomplete beta function."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with ``df`` > 0 degrees of freedom (``math.inf``: the normal)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(df):
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The x with P(T <= x) = p, by bisection on :func:`t_cdf` (to about 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    while high - low > 1e-12 * max(1.0, high):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return 0.5 * (low + high)


# --- paired comparison over seeds ----------------------------------------------------------------

def verdict(ci_low: float, ci_high: float) -> str:
    """"better"/"worse" when the interval excludes 0, else "within noise"."""
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "within noise"


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
    std: float  # sample std of the differences (ddof=1); NaN for one pair
    ci_low: float  # 95% paired-t interval; infinite for one pair
    ci_high: float
    p_value: float  # exact two-sided sign-flip permutation p
    p_floor: float  # the smallest p the test can give with this many pairs: 2 / 2**n (1 for n = 1)
    improved: int  # pairs with d > 0
    ties: int  # pairs with d == 0
    verdict: str

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def share_improved(self) -> float:
        return self.improved / self.n


def paired_comparison(differences: Sequence[float], level: float = LEVEL) -> PairedComparison:
    """Mean, paired-t interval, sign-flip p and verdict of per-seed differences ``d_s``."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no seed pairs: both arms need finished runs of at least one common seed")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"non-finite differences {d.tolist()}")
    mean = float(d.mean())
    if n == 1:
        std, low, high = math.nan, -math.inf, math.inf  # one pair says nothing about the noise
    else:
        std = float(d.std(ddof=1))
        half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedComparison(differences=tuple(float(x) for x in d), mean=mean, std=std, ci_low=low, ci_high=high,
                            p_value=sign_flip_p_value(d), p_floor=min(1.0, 2.0 / 2 ** n),
                            improved=int((d > 0).sum()), ties=int((d == 0).sum()), verdict=verdict(low, high))


# --- unpaired comparison ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WelchInterval:
    mean: float  # mean_a − mean_b
    ci_low: float
    ci_high: float
    df: float  # Welch–Satterthwaite degrees of freedom (NaN when both sides have no spread)
    verdict: str


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
        return WelchInterval(diff, -math.inf, math.inf, math.nan, "within noise")
    variance = sum(parts)
    if variance == 0:
        return WelchInterval(diff, diff, diff, math.nan, verdict(diff, diff))
    df = variance ** 2 / sum(p * p / (n - 1) for p, n in zip(parts, (n_a, n_b)) if p > 0)
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(variance)
    return WelchInterval(diff, diff - half, diff + half, df, verdict(diff - half, diff + half))


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
    if trials == 0:
        return 1.0
    k = min(successes, trials - successes)
    return min(1.0, 2 * sum(math.comb(trials, i) for i in range(k + 1)) / 2 ** trials)


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
