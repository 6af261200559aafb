"""Interleaved, repeated timing and the ratio statistics of ``make bench`` (pure logic, no torch).

Variants are run A B C, B C A, C A B, ... (the order rotates each repetition, so a slow drift of the
machine does not always hit the same variant), after ``warmup`` untimed rounds. A ratio is computed per
repetition, from the two variants timed in that same round, and summarized by its median and range.

A rotation keeps each variant's predecessor (C always follows B), and a training step pays for the one
before it: the memory a heavier step freed is handed back to the system and faulted in again. With
``settle``, an untimed call of the same variant comes right before each timed one, so a step is timed
as in training, after a step of its own kind.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def rotated(names: list[str], rep: int) -> list[str]:
    """The order of repetition ``rep``: ``names`` rotated left by ``rep`` positions."""
    k = rep % len(names) if names else 0
    return names[k:] + names[:k]


def interleave(variants: Mapping[str, Callable[[], object]], reps: int, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter,
               sync: Callable[[], object] | None = None, budget_s: float | None = None,
               min_reps: int = 2, cpu: dict[str, list[float]] | None = None,
               cpu_clock: Callable[[], float] = time.process_time, settle: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each variant, one entry per repetition, measured interleaved.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called after each call, inside the timed interval, and
    once before the first timed call. ``budget_s``: after ``min_reps`` repetitions, stop before a
    repetition that would end past ``budget_s`` seconds from the start (warm-up included), judged by
    the mean duration of the repetitions so far; fewer than ``reps`` entries then come back. ``cpu``,
    when given, receives the same entries in this process's CPU seconds (``cpu_clock``): on a machine
    other programs load, the work each call did, where the wall time also counts the waits for a core.
    ``settle``: an untimed call of the same variant right before each timed one (see the module's
    docstring); the budget counts it.
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
        for name in rotated(names, rep):
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
    """Median of per-repetition values and their range (min–max) over ``n`` repetitions."""

    median: float
    lo: float
    hi: float
    n: int

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        return f"{self.median:.{digits}f}{unit} ({self.lo:.{digits}f}–{self.hi:.{digits}f})"


def spread(values: list[float]) -> Spread:
    if not values:
        raise ValueError("no values")
    return Spread(statistics.median(values), min(values), max(values), len(values))


def ratio(times: Mapping[str, list[float]], num: str, den: str) -> Spread:
    """Per-repetition ratio ``times[num][r] / times[den][r]``, summarized."""
    a, b = times[num], times[den]
    if len(a) != len(b):
        raise ValueError(f"{num} and {den} have different repetition counts: {len(a)} vs {len(b)}")
    return spread([x / y for x, y in zip(a, b)])


@dataclass(frozen=True)
class Target:
    """A cost target: ``value <= limit`` (or ``>=`` with ``at_least``); ``value`` None = not measured."""

    what: str
    value: float | None
    limit: float
    at_least: bool = False

    @property
    def status(self) -> str:
        if self.value is None:
            return "not measured"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "met" if ok else "not met"

    @property
    def rule(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.limit:g}"
