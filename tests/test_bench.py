"""Logic of ``make bench`` (no timing): interleaving order, ratios and spreads with a fake clock,
the time budget, targets, and the markdown writer."""
from __future__ import annotations

import pytest

from benchmarks.bench.compute import CREMAD, NUM_CLASSES, Shapes, n_train_for
from benchmarks.bench.report import md_table, render, targets
from benchmarks.bench.timing import Target, interleave, ratio, rotated, spread


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def variants(clock: FakeClock, costs: dict[str, list[float]], calls: list[str]):
    """Each call of variant k advances the clock by its next cost and is recorded in ``calls``."""
    queues = {k: list(v) for k, v in costs.items()}

    def make(name):
        def call():
            calls.append(name)
            clock.now += queues[name].pop(0)
        return call

    return {k: make(k) for k in costs}


def test_rotated_order():
    assert rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert rotated(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_interleave_fake_clock_ratios_and_spread():
    clock, calls = FakeClock(), []
    # warm-up costs first (1 round), then 3 timed repetitions
    costs = {"A": [9.0, 1.0, 2.0, 4.0], "B": [9.0, 1.5, 2.0, 6.0]}
    times = interleave(variants(clock, costs, calls), reps=3, warmup=1, clock=clock)
    assert calls == ["A", "B", "A", "B", "B", "A", "A", "B"]  # warm-up, then A B / B A / A B
    assert times == {"A": [1.0, 2.0, 4.0], "B": [1.5, 2.0, 6.0]}
    r = ratio(times, "B", "A")  # per repetition 1.5, 1.0, 1.5
    assert (r.median, r.lo, r.hi, r.n) == (1.5, 1.0, 1.5, 3)
    s = spread(times["A"])
    assert (s.median, s.lo, s.hi) == (2.0, 1.0, 4.0)
    assert r.fmt(2) == "1.50 (1.00–1.50)"


def test_interleave_sync_is_inside_the_interval():
    clock, calls = FakeClock(), []

    def sync():
        clock.now += 0.5

    times = interleave(variants(clock, {"A": [1.0, 1.0]}, calls), reps=1, warmup=1, clock=clock, sync=sync)
    assert times == {"A": [1.5]}


def test_interleave_budget_stops_after_min_reps():
    clock, calls = FakeClock(), []
    costs = {"A": [10.0] * 6, "B": [10.0] * 6}
    # warm-up 20 s, each repetition 20 s; budget 70 s: after 2 reps (60 s) the next would end at 80 s
    times = interleave(variants(clock, costs, calls), reps=5, warmup=1, clock=clock, budget_s=70, min_reps=2)
    assert len(times["A"]) == 2 and len(times["B"]) == 2
    clock2, calls2 = FakeClock(), []
    times = interleave(variants(clock2, costs, calls2), reps=5, warmup=1, clock=clock2, budget_s=1, min_reps=2)
    assert len(times["A"]) == 2  # never below min_reps


def test_ratio_rejects_unequal_lengths():
    with pytest.raises(ValueError):
        ratio({"a": [1.0], "b": [1.0, 2.0]}, "a", "b")


def test_target_status():
    assert Target("x", 1.02, 1.03).status == "met"
    assert Target("x", 1.04, 1.03).status == "not met"
    assert Target("x", 12.0, 10.0, at_least=True).status == "met"
    assert Target("x", None, 10.0).status == "not measured"
    assert Target("x", 1.0, 1.03).rule == "≤ 1.03"


def test_n_train_for_gives_enough_full_batches():
    for batches, bs in ((1, 16), (10, 16), (3, 4)):
        n = n_train_for(batches, bs)
        per_class = n // NUM_CLASSES
        held = NUM_CLASSES * min(max(1, round(0.1 * per_class)), per_class - 1)
        assert n - held >= batches * bs


def test_md_table():
    assert md_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def fake_results():
    step = {n: [1.0, 1.0, 1.0] for n in ("joint", "ogm_ge", "gblending", "pmr", "mmpareto", "dgl")}
    step.update({"joint+dagr-fixed": [1.01, 1.02, 1.0], "joint+dagr": [1.6, 1.7, 1.5], "mmpareto-floor": [1.0] * 3})
    step["mmpareto"] = [1.1, 1.2, 1.1]
    epoch = {n: [2.0, 2.0] for n in ("joint", "ogm_ge", "pmr", "mmpareto", "dgl")}
    epoch["gblending"] = [8.0, 8.0]
    return {
        "machine": {"cpu": "Test CPU", "cores": 2, "torch": "2.x", "threads": 2, "python": "3.11", "gpu": None},
        "device": "cpu", "wall_s": 12.0, "quick": False,
        "steps": {"shapes": CREMAD.describe(), "batch": 16, "warmup": 1, "reps": 3, "times": step},
        "epochs": {"shapes": Shapes(64, 47, 56).describe(), "batch": 16, "batches": 10, "reps": 2, "times": epoch,
                   "hooks": {n: [1.0, 1.0] if n == "gblending" else [0.0, 0.0] for n in epoch}},
        "memory": {"what": "ru_maxrss", "rows": {"joint": {"setup_mb": 500.0, "peak_mb": 1500.0, "step_mb": 1000.0},
                                                 "pmr": "failed: boom"}},
        "data": {"error": "fixtures missing"},
        "gpu": None,
    }


def test_targets_from_results():
    by_what = {t.what: t for t in targets(fake_results())}
    assert by_what["DAGR (fixed weights) step ÷ joint step"].value == pytest.approx(1.01)
    assert by_what["DAGR (fixed weights) step ÷ joint step"].status == "met"
    assert by_what["DAGR (Pareto weighting) step ÷ joint step"].value == pytest.approx(1.6)
    assert by_what["DAGR (Pareto weighting) step ÷ joint step"].status == "not met"
    mmp = by_what["MMPareto step ÷ its floor (tolerance 5% for noise)"]
    assert mmp.value == pytest.approx(1.1) and mmp.status == "not met"
    # G-Blending has no target; PMR: full-shape step ratio 1.0 × (epoch/steps factor 1 over joint's 1)
    assert by_what["PMR epoch ÷ joint epoch (full shapes, estimated†)"].value == pytest.approx(1.0)
    assert by_what["cached loader ÷ decode-every-epoch, samples/s"].status == "not measured"


def test_full_shape_epoch_estimate():
    from benchmarks.bench.compute import full_shape_epoch_ratio

    # method: epochs of 8 s with 4 s of hooks (factor 2); joint: 2 s, no hooks (factor 1); step ratio 1.1
    assert full_shape_epoch_ratio(1.1, [8.0, 8.0], [4.0, 4.0], [2.0, 2.0], [0.0, 0.0]) == pytest.approx(2.2)


def test_render_markdown():
    text = render(fake_results())
    assert text.startswith("# `make bench`")
    assert "Test CPU, 2 cores, torch 2.x with 2 threads" in text
    assert "| Joint + DAGR (fixed weights) | 1.010 s (1.000–1.020) | 1.01 (1.00–1.02)× |" in text
    assert "| G-Blending |" in text and "4.00 (4.00–4.00)×" in text
    assert "1.14×" in text  # G-Blending full-shape estimate: 1.0 × 8/7
    assert "1500 (+1000)" in text and "failed: boom" in text
    assert "not measured (fixtures missing)" in text
    assert "not measured (no CUDA device)" in text
    assert "| DAGR (fixed weights) step ÷ joint step | 1.010 | ≤ 1.03 | met |" in text


def test_numerics_section_reports_portable_over_native():
    from benchmarks.bench.report import render_numerics

    text = "\n".join(render_numerics({"steps": 10, "what": "joint", "times": {"portable": [2.0, 2.2, 2.4],
                                                                                 "native": [1.0, 2.0, 1.2]}}))
    assert "| native | 0.1200 | 1.00 (1.00–1.00)× |" in text  # median 1.2 s over 10 steps
    assert "| portable | 0.2200 | 2.00 (1.10–2.00)× |" in text  # per-repetition ratios 2.0, 1.1, 2.0
    assert "not measured (boom)" in "\n".join(render_numerics({"error": "boom"}))
