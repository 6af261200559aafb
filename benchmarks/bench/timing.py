"""Interleaved, repeated timing and the ratio statistics of ``make bench`` (pure logic, no torch).

Variants are run A B C, B C A, C A B, ... (the order rotates each repetition, so a slow drift of the
machine does not always hit the same variant), after ``warmup`` untimed rounds. A ratio is computed per
repetition, from the two variants timed in that same round, and summarized by its median and range.

A rotation keeps each variant's predecessor (C always follows B), and a training step pays for the one
before it where the memory a heavier step freed is handed back to the system and faulted in again (not
where the process keeps freed memory, ``benchmarks.core.allocator``: there a warm-up round is enough,
``compute.warm_start``). With ``settle``, an untimed call of the same variant comes right before each
timed one, so a step is timed as in training, after a step of its own kind.

A ratio of two variants timed far apart in a long round also carries the machine's drift between
them. ``paired(pairs)`` orders a round so that each pair's two variants run back to back (the pairs
rotate, and the two swap places every repetition): the ratio of a pair is then taken from adjacent
calls.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


def rotated(names: list[str], rep: int) -> list[str]:
    """The order of repetition ``rep``: ``names`` rotated left by ``rep`` positions."""
    k = rep % len(names) if names else 0
    return names[k:] + names[:k]


Order = Callable[[list[str], int], list[str]]


def paired(pairs: list[tuple[str, str]]) -> Order:
    """An ``interleave`` order keeping each pair's variants adjacent: repetition ``rep`` runs the pairs
    rotated left by ``rep``, each as (a, b) on even repetitions and (b, a) on odd ones. The variants of
    ``interleave`` must be exactly the pairs' (each in one pair)."""
    flat = [name for pair in pairs for name in pair]
    if len(set(flat)) != len(flat):
        raise ValueError(f"a variant is in more than one pair: {pairs}")

    def order(names: list[str], rep: int) -> list[str]:
        if sorted(names) != sorted(flat):
            raise ValueError(f"the pairs {pairs} do not cover the variants {names} exactly")
        return [name for pair in rotated(list(pairs), rep) for name in (pair if rep % 2 == 0 else pair[::-1])]

    return order


def interleave(variants: Mapping[str, Callable[[], object]], reps: int, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter,
               sync: Callable[[], object] | None = None, budget_s: float | None = None,
               min_reps: int = 2, cpu: dict[str, list[float]] | None = None,
               cpu_clock: Callable[[], float] = time.process_time, settle: bool = False,
               order: Order = rotated) -> dict[str, list[float]]:
    """Seconds per call of each variant, one entry per repetition, measured interleaved.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called after each call, inside the timed interval, and
    once before the first timed call. ``budget_s``: after ``min_reps`` repetitions, stop before a
    repetition that would end past ``budget_s`` seconds from the start (warm-up included), judged by
    the mean duration of the repetitions so far; fewer than ``reps`` entries then come back. ``cpu``,
    when given, receives the same entries in this process's CPU seconds (``cpu_clock``): on a machine
    other programs load, the work each call did, where the wall time also counts the waits for a core.
    ``settle``: an untimed call of the same variant right before each timed one (see the module's
    docstring); the budget counts it. ``order(names, rep)``: the variants' order in repetition ``rep``
    (default ``rotated``; ``paired`` keeps pairs adjacent).
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    names = list(variants)
    start = clock()
    for _ in range(warmup):
        for name in names:
            variants[name]()
    if sync is not None:
        sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    if cpu is not None:
        cpu.update({name: [] for name in names})
    timed_start = clock()
    for rep in range(reps):
        if budget_s is not None and rep >= min_reps:
            now = clock()
            if now - start + (now - timed_start) / rep > budget_s:
                break
        for name in order(names, rep):
            if settle:
                variants[name]()
                if sync is not None:
                    sync()
            c0, t0 = cpu_clock(), clock()
            variants[name]()
            if sync is not None:
                sync()
            times[name].append(clock() - t0)
            if cpu is not None:
                cpu[name].append(cpu_clock() - c0)
    return times


@dataclass(frozen=True)
class Spread:
    """Median of per-repetition values and their range (min–max) over ``n`` repetitions; ``interval``:
    a distribution-free interval for the median, ``(lo, hi, coverage)`` (:func:`median_interval`);
    ``values``: the repetitions themselves, for :func:`reps_for_verdict`."""

    median: float
    lo: float
    hi: float
    n: int
    interval: tuple[float, float, float] | None = None
    values: tuple[float, ...] = field(default=(), repr=False)

    def scaled(self, factor: float) -> "Spread":
        """Every value times a positive ``factor`` (the coverage stays)."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        interval = None if self.interval is None else (self.interval[0] * factor, self.interval[1] * factor,
                                                       self.interval[2])
        return Spread(self.median * factor, self.lo * factor, self.hi * factor, self.n, interval,
                      tuple(v * factor for v in self.values))

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        return f"{self.median:.{digits}f}{unit} ({self.lo:.{digits}f}–{self.hi:.{digits}f})"


def spread(values: list[float]) -> Spread:
    if not values:
        raise ValueError("no values")
    return Spread(statistics.median(values), min(values), max(values), len(values), median_interval(values),
                  tuple(values))


INTERVAL_LEVEL = 0.9


def median_interval(values: list[float], level: float = INTERVAL_LEVEL) -> tuple[float, float, float]:
    """The order statistics ``(x_(k), x_(n+1-k))`` around the median with the largest ``k`` whose
    coverage, ``1 - 2·P(Binomial(n, ½) < k)``, is at least ``level``, and that coverage: it holds for
    any distribution of independent repetitions. Fewer than 5 values cannot reach 90%: then the range,
    with its lower coverage (75% for 3 values)."""
    xs, n = sorted(values), len(values)
    below = 0.0  # P(Binomial(n, ½) < k), for k = 1, 2, ...
    best = None
    for k in range(1, (n + 1) // 2 + 1):
        below += math.comb(n, k - 1) / 2**n
        coverage = 1.0 - 2.0 * below
        if best is not None and coverage < level:
            break
        best = (xs[k - 1], xs[n - k], coverage)
    return best


VERDICT_POWER = 0.8


def reps_for_verdict(values: Sequence[float], limit: float, level: float = INTERVAL_LEVEL,
                     power: float = VERDICT_POWER) -> float:
    """About how many repetitions give a ``power`` chance that the ``level`` interval for the median
    leaves ``limit`` out, if they spread as ``values`` do: with a share ``p`` of them below the limit
    (ties count half), the sign test's n = ((z_level + z_power) / (2|p − ½|))², z the normal quantiles
    of the two-sided ``level`` and of ``power``. A planning figure for the next run, as uncertain as
    ``p``, not a verdict; ``inf`` where half the values lie on each side."""
    if not values:
        raise ValueError("no values")
    below = sum(v < limit for v in values) + 0.5 * sum(v == limit for v in values)
    margin = abs(below / len(values) - 0.5)
    if margin == 0:
        return math.inf
    normal = statistics.NormalDist()
    z = normal.inv_cdf(0.5 + level / 2) + normal.inv_cdf(power)
    return math.ceil((z / (2 * margin)) ** 2)


def ratio(times: Mapping[str, list[float]], num: str, den: str) -> Spread:
    """Per-repetition ratio ``times[num][r] / times[den][r]``, summarized."""
    a, b = times[num], times[den]
    if len(a) != len(b):
        raise ValueError(f"{num} and {den} have different repetition counts: {len(a)} vs {len(b)}")
    return spread([x / y for x, y in zip(a, b)])


@dataclass(frozen=True)
class Target:
    """A cost target: ``value <= limit`` (or ``>=`` with ``at_least``); ``value`` None = not measured.

    With an ``interval`` for the value (``(lo, hi, coverage)``), the target is met only when the whole
    interval is, missed only when none of it is, and otherwise undecided: the repetitions cannot tell
    on which side of the limit the value lies; ``values``, the repetitions, then say about how many
    a verdict would take (:attr:`reps_for_verdict`)."""

    what: str
    value: float | None
    limit: float
    at_least: bool = False
    interval: tuple[float, float, float] | None = None
    values: tuple[float, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, what: str, measured: Spread | None, limit: float, at_least: bool = False) -> "Target":
        """The target on a measured median with its interval (None: not measured)."""
        if measured is None:
            return cls(what, None, limit, at_least)
        return cls(what, measured.median, limit, at_least, measured.interval, measured.values)

    def _ok(self, x: float) -> bool:
        return x >= self.limit if self.at_least else x <= self.limit

    @property
    def status(self) -> str:
        if self.value is None:
            return "not measured"
        if self.interval is None:
            return "met" if self._ok(self.value) else "not met"
        lo, hi = self.interval[:2]
        if self._ok(lo) and self._ok(hi):
            return "met"
        if not self._ok(lo) and not self._ok(hi):
            return "not met"
        return "undecided"

    @property
    def reps_for_verdict(self) -> float | None:
        """For an undecided target with its repetitions, about how many a verdict would take
        (:func:`reps_for_verdict`); None otherwise."""
        if self.status != "undecided" or not self.values:
            return None
        return reps_for_verdict(self.values, self.limit)

    @property
    def rule(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.limit:g}"
