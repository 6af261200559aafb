"""Logic of ``make bench`` (no timing): interleaving order, ratios and spreads with a fake clock,
the time budget, targets, and the markdown writer."""
from __future__ import annotations

import pytest
import torch

from benchmarks.bench.compute import CREMAD, NUM_CLASSES, Shapes, n_train_for
from benchmarks.bench.report import md_table, render, targets
from benchmarks.bench.timing import (Target, interleave, median_interval, paired, ratio, reps_for_verdict, rotated,
                                     spread)


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


def test_interleave_settle_times_each_call_after_an_untimed_one_of_its_own():
    """A step that pays for a heavier predecessor (B after A costs 3 more here) is timed after its own kind."""
    clock, calls = FakeClock(), []

    def make(name, cost):
        def call():
            clock.now += cost + (3.0 if name == "B" and calls[-1:] == ["A"] else 0.0)
            calls.append(name)
        return call

    steps = {"A": make("A", 2.0), "B": make("B", 1.0)}
    assert interleave(steps, reps=2, warmup=0, clock=clock) == {"A": [2.0, 2.0], "B": [4.0, 1.0]}
    calls.clear()
    assert interleave(steps, reps=2, warmup=0, clock=clock, settle=True) == {"A": [2.0, 2.0], "B": [1.0, 1.0]}
    assert calls == ["A", "A", "B", "B", "B", "B", "A", "A"]


def test_paired_order_keeps_each_pair_adjacent_and_swaps_it_each_repetition():
    order = paired([("A", "a"), ("B", "b"), ("C", "c")])
    names = ["A", "a", "B", "b", "C", "c"]
    assert order(names, 0) == ["A", "a", "B", "b", "C", "c"]
    assert order(names, 1) == ["b", "B", "c", "C", "a", "A"]
    assert order(names, 2) == ["C", "c", "A", "a", "B", "b"]
    with pytest.raises(ValueError, match="more than one pair"):
        paired([("A", "a"), ("a", "B")])
    with pytest.raises(ValueError, match="do not cover"):
        order(["A", "a", "B"], 0)


def test_a_paired_ratio_leaves_out_the_drift_between_pairs():
    """A machine slowing by 1 s per call: rotated over A C B D, B runs two calls from A and the ratio
    B/A carries two calls' drift; with (A, B) adjacent it carries one."""
    clock, calls = FakeClock(), []

    def make(name):
        def call():
            calls.append(name)
            clock.now += 10.0 + len(calls)
        return call

    steps = {name: make(name) for name in "ACBD"}
    assert interleave(steps, reps=2, warmup=0, clock=clock) == {"A": [11, 18], "C": [12, 15], "B": [13, 16],
                                                                "D": [14, 17]}
    calls.clear()
    times = interleave(steps, reps=2, warmup=0, clock=clock, order=paired([("A", "B"), ("C", "D")]))
    assert calls == ["A", "B", "C", "D", "D", "C", "B", "A"]
    assert times == {"A": [11, 18], "B": [12, 17], "C": [13, 16], "D": [14, 15]}
    assert ratio(times, "B", "A").lo == 17 / 18 and ratio(times, "B", "A").hi == 12 / 11  # rotated: 16/18, 13/11


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


def test_median_interval_takes_the_order_statistics_that_reach_the_coverage():
    # 5 values: (min, max) covers 1 - 2/32 = 93.75%; the next pair in would cover 62.5%
    assert median_interval([5.0, 1.0, 4.0, 2.0, 3.0]) == (1.0, 5.0, pytest.approx(0.9375))
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0, pytest.approx(0.75))  # below 90%: the range
    # 21 values: x_(7)..x_(15), P(Bin(21, 1/2) < 7) = 0.0392, coverage 0.9216 (k = 8 gives 0.8108)
    lo, hi, coverage = median_interval([float(i) for i in range(1, 22)])
    assert (lo, hi) == (7.0, 15.0) and coverage == pytest.approx(0.92165, abs=1e-5)
    assert spread([1.0, 2.0, 3.0]).interval == (1.0, 3.0, pytest.approx(0.75))


def test_a_target_with_an_interval_is_met_or_missed_only_when_all_of_it_is():
    assert Target("x", 1.02, 1.05, interval=(0.98, 1.04, 0.9)).status == "met"
    assert Target("x", 1.02, 1.05, interval=(0.98, 1.07, 0.9)).status == "undecided"
    assert Target("x", 1.08, 1.05, interval=(1.06, 1.10, 0.9)).status == "not met"
    assert Target("x", 12.0, 10.0, at_least=True, interval=(9.0, 13.0, 0.9)).status == "undecided"
    assert Target("x", 12.0, 10.0, at_least=True, interval=(11.0, 13.0, 0.9)).status == "met"
    assert Target.of("x", None, 1.0).status == "not measured"
    measured = spread([1.0, 1.1, 1.2, 1.3, 1.4])
    assert Target.of("x", measured, 1.5).interval == measured.interval and Target.of("x", measured, 1.5).status == "met"


def test_reps_for_verdict_is_the_sign_tests_count_from_the_share_below_the_limit():
    # 8 of 11 below: p = 8/11, |p - 1/2| = 5/22; (z_0.95 + z_0.8) = 1.64485 + 0.84162 = 2.48647;
    # n = (2.48647 / (10/22))^2 = 29.92 -> 30
    assert reps_for_verdict([0.9] * 8 + [1.1] * 3, 1.0) == 30
    assert reps_for_verdict([1.1] * 8 + [0.9] * 3, 1.0) == 30  # the side does not matter
    # a tie counts half: p = 2.5/4, n = (2.48647 / 0.25)^2 = 98.92 -> 99
    assert reps_for_verdict([1.0, 0.9, 1.1, 0.9], 1.0) == 99
    assert reps_for_verdict([0.9, 1.1], 1.0) == float("inf")
    # the closer the share to one half, the more repetitions it takes
    assert reps_for_verdict([0.9] * 6 + [1.1] * 5, 1.0) > reps_for_verdict([0.9] * 7 + [1.1] * 4, 1.0)


def test_only_an_undecided_target_plans_its_repetitions():
    undecided = Target.of("x", spread([0.9] * 8 + [1.1] * 3), 1.0)
    assert undecided.status == "undecided" and undecided.reps_for_verdict == 30
    assert Target.of("x", spread([0.9] * 11), 1.0).reps_for_verdict is None
    assert Target("x", 0.95, 1.0, interval=(0.9, 1.1, 0.9)).reps_for_verdict is None  # no repetitions kept
    # an estimate scaled by a factor scales its repetitions with it
    scaled = spread([0.9] * 8 + [1.1] * 3).scaled(2.0)
    assert scaled.values == tuple([1.8] * 8 + [2.2] * 3) and Target.of("x", scaled, 2.0).reps_for_verdict == 30


def test_the_repetitions_cell_plans_only_what_is_undecided():
    from benchmarks.bench.report import _reps_cell

    assert _reps_cell(Target.of("x", spread([0.9] * 8 + [1.1] * 3), 1.0)) == "11; ≈30"
    assert _reps_cell(Target.of("x", spread([0.9] * 5 + [1.0] + [1.1] * 5), 1.0)) == "11; half on each side of the limit"
    assert _reps_cell(Target.of("x", spread([0.9] * 11), 1.0)) == "11"
    assert _reps_cell(Target("x", 800.0, 900.0)) == "–"  # a single reading


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


def fake_dagr_times(exact, floor, fast):
    """Seconds per step of the DAGR section's variants over three repetitions (joint: 1 s)."""
    times = {"joint": [1.0] * 3, "joint+dagr": exact, "joint+dagr floor": floor, "joint+dagr-floor": [1.0] * 3,
             "joint+dagr-last-layer": fast, "dgl": [1.0] * 3, "dgl+dagr-last-layer": [1.7] * 3}
    return {"times": times, "cpu": times, "encoder_times": [0.6] * 3, "encoder_cpu": [0.6] * 3}


def fake_results():
    step = {n: [1.0, 1.0, 1.0] for n in ("joint", "ogm_ge", "gblending", "pmr", "mmpareto", "dgl")}
    step.update({"joint+dagr-fixed": [1.01, 1.02, 1.0], "mmpareto-floor": [1.0] * 3})
    step["mmpareto"] = [1.1, 1.2, 1.1]
    epoch = {n: [2.0, 2.0] for n in ("joint", "ogm_ge", "pmr", "mmpareto", "dgl")}
    epoch["gblending"] = [8.0, 8.0]
    return {
        "machine": {"cpu": "Test CPU", "cores": 2, "torch": "2.x", "threads": 2, "python": "3.11", "gpu": None},
        "device": "cpu", "wall_s": 12.0, "quick": False,
        "steps": {"shapes": CREMAD.describe(), "batch": 16, "warmup": 1, "reps": 3, "times": step},
        "epochs": {"shapes": Shapes(64, 47, 56).describe(), "batch": 16, "batches": 10, "reps": 2, "times": epoch,
                   "hooks": {n: [1.0, 1.0] if n == "gblending" else [0.0, 0.0] for n in epoch}},
        "dagr": {"substrates": [
            {"substrate": "small CNN, AV-Digits, batch 64", "batch": 64, "steps_per_call": 10, "warmup": 1,
             "threads": {1: fake_dagr_times([2.2, 2.3, 2.1], [2.0, 2.0, 2.0], [1.4] * 3),
                         2: fake_dagr_times([2.0] * 3, [2.0] * 3, [1.3] * 3)}},
            {"substrate": "ResNet-18, CREMA-D shapes, batch 16", "batch": 16, "steps_per_call": 1, "warmup": 1,
             "threads": {1: fake_dagr_times([2.4] * 3, [2.35] * 3, [1.05, 1.08, 1.04]),
                         2: fake_dagr_times([2.5] * 3, [2.3] * 3, [1.2] * 3)}}],
            "agreement": {"label": "joint+dagr-last-layer-s0", "epochs": 2, "test_acc": [0.5, 0.9], "train": [
                {"dagr/alpha/audio": 0.8, "dagr/alpha_exact/audio": 0.82, "dagr/alpha_agreement/audio/correlation": 0.9,
                 "dagr/alpha_agreement/audio/mean_abs_diff": 0.01},
                {"dagr/alpha/audio": 0.9, "dagr/alpha_exact/audio": 0.9, "dagr/alpha_agreement/audio/correlation":
                 float("nan"), "dagr/alpha_agreement/audio/mean_abs_diff": 0.03}]}},
        "memory": {"what": "ru_maxrss", "rows": {"joint": {"setup_mb": 500.0, "peak_mb": 1500.0, "step_mb": 1000.0},
                                                 "joint+dagr": {"setup_mb": 500.0, "peak_mb": 2000.0, "step_mb": 1500.0},
                                                 "pmr": "failed: boom"}},
        "data": {"error": "fixtures missing"},
        "gpu": None,
    }


def test_targets_from_results():
    by_what = {t.what: t for t in targets(fake_results())}
    assert by_what["DAGR (fixed weights) step ÷ joint step"].value == pytest.approx(1.01)
    assert by_what["DAGR (fixed weights) step ÷ joint step"].status == "met"
    exact = {what: t for what, t in by_what.items() if what.startswith("DAGR exact")}
    assert [(t.value, t.status) for t in exact.values()] == [
        (pytest.approx(1.1), "undecided"), (pytest.approx(1.0), "met"), (pytest.approx(2.4 / 2.35), "met"),
        (pytest.approx(2.5 / 2.3), "not met")]  # small CNN at 1 and 2 threads, then ResNet-18
    assert exact["DAGR exact (the paper's rule) step ÷ its floor, small CNN, 1 thread"].interval == pytest.approx(
        (1.05, 1.15, 0.75))  # ratios 1.1, 1.15, 1.05: the range, which spans the limit 1.05
    assert "DAGR exact (the paper's rule) step ÷ its floor, small CNN, 1 thread" in exact
    fast = {what: t for what, t in by_what.items() if what.startswith("DAGR last-layer")}
    assert [(t.value, t.status) for t in fast.values()] == [(pytest.approx(1.05), "met"), (pytest.approx(1.2), "not met")]
    assert all("ResNet-18" in what for what in fast)  # the target is set at ResNet-18's shapes only
    mmp = by_what["MMPareto step ÷ its floor (tolerance 5% for noise)"]
    assert mmp.value == pytest.approx(1.1) and mmp.status == "not met"
    # G-Blending has no target; PMR: full-shape step ratio 1.0 × (epoch/steps factor 1 over joint's 1)
    assert by_what["PMR epoch ÷ joint epoch (full shapes, estimated†)"].value == pytest.approx(1.0)
    assert by_what["cached loader ÷ decode-every-epoch, samples/s"].status == "not measured"


def test_full_shape_epoch_estimate_scales_the_step_ratio_and_its_interval():
    from benchmarks.bench.compute import hooks_factor
    from benchmarks.bench.report import epoch_estimate

    # method: epochs of 8 s with 4 s of hooks (factor 2); joint: 2 s, no hooks (factor 1)
    assert hooks_factor([8.0, 8.0], [4.0, 4.0], [2.0, 2.0], [0.0, 0.0]) == pytest.approx(2.0)
    steps = {"joint": [1.0] * 5, "ogm_ge": [1.0, 1.1, 1.2, 1.3, 1.4]}
    epochs = {"times": {"joint": [2.0, 2.0], "ogm_ge": [8.0, 8.0]},
              "hooks": {"joint": [0.0, 0.0], "ogm_ge": [4.0, 4.0]}}
    est = epoch_estimate({"steps": {"times": steps}, "epochs": epochs}, "ogm_ge")
    assert (est.median, est.lo, est.hi) == pytest.approx((2.4, 2.0, 2.8))
    assert est.interval == pytest.approx((2.0, 2.8, 1 - 2 / 32))  # 5 values: the range, 94%
    target = Target.of("epoch", est, 2.5)
    assert target.status == "undecided"  # its step's interval, scaled, spans the limit


def test_a_spread_scales_by_a_positive_factor_only():
    s = spread([1.0, 2.0, 3.0])
    assert s.scaled(2.0) == spread([2.0, 4.0, 6.0])
    with pytest.raises(ValueError, match="positive"):
        s.scaled(0.0)


def test_steps_are_settled_only_where_freed_memory_goes_back_to_the_system(monkeypatch):
    from benchmarks.bench.compute import warm_start
    from benchmarks.bench.report import start_text

    monkeypatch.setenv("GEOMREG_MALLOC", "keep")
    kept = warm_start(0)
    assert kept == {"warmup": 1, "settle": False} and warm_start(2) == {"warmup": 2, "settle": False}
    assert "1 untimed round(s)" in start_text(kept)
    monkeypatch.setenv("GEOMREG_MALLOC", "system")
    system = warm_start(0)
    assert system == {"warmup": 0, "settle": True}
    assert "right after an untimed one of the same variant" in start_text(system)
    assert start_text(None) == start_text(system)  # results from before the choice was recorded


def test_render_markdown():
    text = render(fake_results())
    assert text.startswith("# `make bench`")
    assert "Test CPU, 2 cores, torch 2.x with 2 threads" in text
    assert "Fixed weights (Eq. 6: its loss joins the objective, one backward): 1.01 (1.00–1.02)× joint's step" in text
    assert "| G-Blending |" in text and "4.00 (4.00–4.00)×" in text
    assert "1.14×" in text  # G-Blending full-shape estimate: 1.0 × 8/7
    assert "1500 (+1000)" in text and "failed: boom" in text
    assert "not measured (fixtures missing)" in text
    assert "not measured (no CUDA device)" in text
    assert "| DAGR (fixed weights) step ÷ joint step | 1.010 | 1.000–1.020 (75%) | ≤ 1.03 | met | 3 |" in text
    assert "| default grid, measured wall time (s) of the last complete `make reproduce` | – | – | ≤ 900 | not measured |" in text
    assert "| **exact ÷ its floor** |  | 1.10 (1.05–1.15)× | 1.10 (1.05–1.15)× |  | 1.00 (1.00–1.00)× |" in text
    assert "| B_enc: the encoders' part of joint's backward | 0.600 s (0.600–0.600) |" in text
    assert "Joint + DAGR (Pareto weighting, exact α*: the paper's rule) 2000 (+1500)" in text
    assert "more repetitions on its own" not in text  # results from before the exact pair had them
    # the agreement: medians over the epochs, a NaN correlation (a constant α) left out
    assert "| audio | 0.90 (0.90–0.90) | 0.0200 (0.0100–0.0300) | 0.850 | 0.860 |" in text


def test_the_dagr_section_says_what_the_exact_pair_ran_on_its_own():
    res = fake_results()
    for n, timed in res["dagr"]["substrates"][1]["threads"].items():
        timed["more_reps"] = 1 if n == 1 else 0
        if n == 1:  # the exact pair, and the floor computed from it ("cpu" is the same dict here)
            for key, extra in (("joint+dagr", 2.4), ("joint+dagr-floor", 1.0), ("joint+dagr floor", 2.35)):
                timed["times"][key] = timed["times"][key] + [extra]
    assert ("; the exact rule's pair then ran more repetitions on its own: 1 at 1 thread (4 in all), 0 at 2 threads "
            "(3 in all)") in render(res)


def test_machine_line_names_the_instruction_sets_and_the_commit():
    from benchmarks.bench.report import machine, machine_text
    from benchmarks.core.numerics import cpu_flags

    recorded = machine()
    assert recorded["isa"] == cpu_flags() and "commit" in recorded and "dirty" in recorded
    mc = {"cpu": "AMD EPYC", "isa": ["avx2", "fma", "avx512f"], "cores": 2, "torch": "2.x", "threads": 2,
          "python": "3.11", "gpu": None, "commit": "0123456789abcdef", "dirty": True}
    assert machine_text(mc) == ("AMD EPYC (avx2 fma avx512f), 2 cores, torch 2.x with 2 threads, Python 3.11; "
                                "GPU: none; code at commit 0123456789 with uncommitted changes")
    assert machine_text({**mc, "dirty": False}).endswith("code at commit 0123456789")
    older = {k: v for k, v in mc.items() if k not in ("isa", "commit", "dirty")}  # measurements from before
    assert machine_text(older) == "AMD EPYC, 2 cores, torch 2.x with 2 threads, Python 3.11; GPU: none"


def test_numerics_section_reports_portable_over_native():
    from benchmarks.bench.report import render_numerics

    text = "\n".join(render_numerics({"steps": 10, "what": "joint", "times": {"portable": [2.0, 2.2, 2.4],
                                                                                 "native": [1.0, 2.0, 1.2]}}))
    assert "| native | 0.1200 | 1.00 (1.00–1.00)× |" in text  # median 1.2 s over 10 steps
    assert "| portable | 0.2200 | 2.00 (1.10–2.00)× |" in text  # per-repetition ratios 2.0, 1.1, 2.0
    assert "not measured (boom)" in "\n".join(render_numerics({"error": "boom"}))


def test_interleave_records_cpu_seconds_beside_the_wall_clock():
    clock, calls, cpu_clock = FakeClock(), [], FakeClock()
    costs = {"A": [1.0, 2.0], "B": [3.0, 4.0]}
    named = variants(clock, costs, calls)

    def busy(name):
        def call():
            named[name]()
            cpu_clock.now += 0.5  # half a second of CPU per call, whatever the wall time
        return call

    cpu = {}
    times = interleave({k: busy(k) for k in costs}, reps=1, warmup=1, clock=clock, cpu=cpu, cpu_clock=cpu_clock)
    assert times == {"A": [2.0], "B": [4.0]} and cpu == {"A": [0.5], "B": [0.5]}


def test_per_call_means_of_the_floor_parts():
    from benchmarks.bench.dagr import per_call

    assert per_call([1.0, 3.0, 2.0, 2.0], 2) == [2.0, 2.0]
    assert per_call([1.0, 2.0], 1) == [1.0, 2.0]


def test_the_floor_parts_of_the_timed_calls_leave_out_warm_up_and_settling_calls():
    from benchmarks.bench.dagr import timed_calls

    assert timed_calls([9.0, 1.0, 2.0, 3.0], 2, 1, settle=False) == [2.0, 3.0]  # a warm-up call, then 3 timed
    # warm-up, then (untimed, timed) per repetition
    assert timed_calls([9.0, 8.0, 1.0, 7.0, 2.0], 2, 1, settle=True) == [1.0, 2.0]
    # 2 steps per call: calls of mean 2, 5, 2, 4 seconds per step; the second and the fourth were timed
    assert timed_calls([1.0, 3.0, 5.0, 5.0, 2.0, 2.0, 4.0, 4.0], 2, 2, settle=True) == [5.0, 4.0]


@pytest.mark.parametrize("settle", [False, True])
def test_the_exact_pair_gets_its_more_repetitions_and_its_floor_stays_aligned(settle):
    from benchmarks.bench.dagr import EXACT_PAIR, FLOOR_TIMES, QUICK_SUBSTRATES, time_substrate

    sub = QUICK_SUBSTRATES[1]  # the small CNN at tiny shapes: 2 rounds of the pairs, 2 more of the exact pair
    timed = time_substrate(sub, "cpu", 0, None, threads=(1,), settle=settle)["threads"][1]
    assert timed["more_reps"] == sub.more_reps == 2
    times = timed["times"]
    assert all(len(times[k]) == sub.reps + sub.more_reps for k in (*EXACT_PAIR, FLOOR_TIMES))
    assert len(times["joint"]) == len(times["dgl"]) == sub.reps
    assert len(timed["encoder_times"]) == sub.reps + sub.more_reps
    assert times[FLOOR_TIMES] == [t + 2 * b for t, b in zip(times["joint+dagr-floor"], timed["encoder_times"])]
    assert all(b < t for t, b in zip(times["joint+dagr-floor"], timed["encoder_times"]))  # a part of its step


def test_split_backward_gives_the_plain_gradient_and_times_the_encoders(debug_raw, tmp_path):
    """The floor's step computes joint training's gradient with DAGR's fixed form, as one backward would."""
    from benchmarks.bench.compute import SplitBackward
    from benchmarks.grid.config import resolve_run
    from benchmarks.grid.naming import run_dir_for
    from benchmarks.train.trainer import Trainer

    grads = []
    for split in (False, True):
        cfg = resolve_run({**debug_raw, "dagr": {"enabled": True, "weighting": "fixed"}})
        trainer = Trainer(cfg, run_dir_for(cfg, tmp_path / str(split)))
        if split:
            trainer.method.backward = SplitBackward(trainer.model)
        trainer.compute_gradients(next(trainer.data.train.batches(16)))
        grads.append({n: p.grad for n, p in trainer.model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7)
    backward = trainer.method.backward
    assert len(backward.encoder_s) == len(backward.encoder_cpu_s) == 1 and backward.encoder_s[0] > 0


def test_the_allocator_section_counts_the_steps_after_the_first():
    from benchmarks.bench.report import render_allocator

    def run(faults, seconds):
        return {"setup_mb": 500.0, "peak_mb": 900.0, "step_mb": 400.0, "step_faults": faults, "step_s": seconds}

    effect = {"shapes": "tiny", "batch": 4, "steps": 3, "reps": 2, "rows": {
        "joint": {"keep": [run([900, 10, 30], [2.0, 1.0, 1.2]), run([800, 20, 40], [2.0, 1.1, 1.3])],
                  "system": [run([900, 500, 700], [2.0, 1.4, 1.6]), "timed out after 120 s"]},
        "joint+dagr": {"keep": ["failed: boom"], "system": []}}}
    text = "\n".join(render_allocator(effect))
    # keep: faults 10, 30, 20, 40 after the first steps (median 25), seconds 1.0–1.3 (median 1.15)
    assert "| Joint training | keep | 25 | 900 | 1.150 s (1.000–1.300) | 900 (+400) |" in text
    assert "| Joint training | system | 600 | 900 | 1.500 s (1.400–1.600) | 900 (+400) |" in text  # the failed run left out
    assert "| Joint + DAGR (Pareto weighting, exact α*: the paper's rule) | keep | – | – | – | failed: boom |" in text
    assert render_allocator(None)[2].startswith("not measured")


def test_measurements_render_the_same_from_the_json_written_beside_the_markdown(tmp_path):
    """``--render`` reads what ``make bench`` wrote: JSON turns the thread counts into strings and tuples
    into lists, and the report must not tell."""
    import json

    from benchmarks.bench.__main__ import main
    from benchmarks.core.records import atomic_write_json

    res = fake_results()
    res["data"] = {"clips": 12, "prepare_s": 1.0, "times": {"decode": [10.0, 12.0, 9.0], "cached": [1.0, 1.0, 1.0]},
                   "cached_sps": 12.0, "decode_sps": 1.0, "frame_size": 224, "passes": 10}
    atomic_write_json(tmp_path / "bench.json", res)
    assert json.loads((tmp_path / "bench.json").read_text())["dagr"]["substrates"][0]["threads"].keys() == {"1", "2"}
    assert main(["--render", str(tmp_path / "bench.json"), "--out", str(tmp_path / "again.md")]) == 0
    text = (tmp_path / "again.md").read_text()
    assert text == render(res)
    assert "Speed-up of the cached loader: **10.0 (9.0–12.0)×**" in text
    assert "| cached loader ÷ decode-every-epoch, samples/s | 10.000 | 9.000–12.000 (75%) | ≥ 10 | undecided |" in text


def test_render_names_a_missing_or_foreign_measurements_file(tmp_path):
    from benchmarks.bench.__main__ import main

    with pytest.raises(SystemExit, match="no such file"):
        main(["--render", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.md")])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="bad.json: not JSON"):
        main(["--render", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.md")])
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="not the measurements"):
        main(["--render", str(tmp_path / "other.json"), "--out", str(tmp_path / "x.md")])
    assert not (tmp_path / "x.md").exists()


def test_each_method_step_is_paired_with_a_joint_step_of_its_own_or_its_floor():
    from benchmarks.bench.compute import step_pairs

    assert step_pairs(["joint+dagr-fixed", "ogm_ge", "mmpareto", "dgl"]) == [
        ("joint+dagr-fixed", "joint"), ("ogm_ge", "joint (beside ogm_ge)"), ("mmpareto", "mmpareto-floor"),
        ("dgl", "joint (beside dgl)")]


def test_a_methods_ratio_is_taken_against_the_joint_steps_beside_it():
    res = fake_results()
    st = res["steps"]["times"]
    st["ogm_ge"] = [1.2, 1.3, 1.25]
    st["joint (beside ogm_ge)"] = [1.2, 1.25, 1.25]  # the machine was slower next to OGM-GE's steps
    res["steps"]["pairs"] = [["ogm_ge", "joint (beside ogm_ge)"]]
    by_what = {t.what: t for t in targets(res)}
    assert by_what["OGM-GE step ÷ joint step"].value == pytest.approx(1.0)  # not 1.25 against joint's own
    assert by_what["OGM-GE epoch ÷ joint epoch (full shapes, estimated†)"].value == pytest.approx(1.0)
    assert by_what["DGL step ÷ joint step"].value == pytest.approx(1.0)  # no pair of its own: joint's
    text = render(res)
    assert "| OGM-GE | 1.250 s (1.200–1.300) | 1.00 (1.00–1.04)× |" in text
    assert "each method's step right next to a joint step of its own" in text


def test_the_joint_steps_beside_each_method_time_one_joint_trainer(monkeypatch):
    from benchmarks.bench import compute

    built, stepped = [], []

    class FakeTrainer:
        def __init__(self, name):
            self.name = name
            built.append(name)

        def train_step(self, batch):
            stepped.append(self.name)

    monkeypatch.setattr(compute, "step_trainer", lambda name, *a, **k: FakeTrainer(name))
    monkeypatch.setattr(compute, "first_batch", lambda trainer: None)
    pairs = compute.step_pairs(["joint+dagr-fixed", "ogm_ge", "mmpareto"])
    times = compute.time_steps(pairs, CREMAD, 16, reps=1, warmup=0, settle=False)
    assert sorted(built) == ["joint", "joint+dagr-fixed", "mmpareto", "mmpareto-floor", "ogm_ge"]
    assert stepped == ["joint+dagr-fixed", "joint", "ogm_ge", "joint", "mmpareto", "mmpareto-floor"]
    assert set(times) == {"joint+dagr-fixed", "joint", "ogm_ge", "joint (beside ogm_ge)", "mmpareto",
                          "mmpareto-floor"}


def test_a_methods_gradient_processing_is_timed_inside_its_steps_and_reported_as_a_share(monkeypatch):
    from benchmarks.bench import compute

    class FakeMethod:
        def process_gradients(self, out, batch):
            return {"seen": (out, batch)}

    class FakeTrainer:
        def __init__(self, name):
            self.method = FakeMethod()

        def train_step(self, batch):
            assert self.method.process_gradients("out", batch) == {"seen": ("out", batch)}  # passed through

    monkeypatch.setattr(compute, "step_trainer", lambda name, *a, **k: FakeTrainer(name))
    monkeypatch.setattr(compute, "first_batch", lambda trainer: "batch")
    processing = {}
    compute.time_steps(compute.step_pairs(["ogm_ge", "mmpareto"]), CREMAD, 16, reps=3, warmup=1, settle=False,
                       processing=processing)
    assert sorted(processing) == ["mmpareto", "ogm_ge"]  # the methods, not joint or the floor
    assert len(processing["ogm_ge"]) == 4  # every step it ran, the warm-up round's included

    res = fake_results()
    res["steps"]["times"]["ogm_ge"] = [2.0, 2.2, 2.1]
    res["steps"]["processing"] = {"ogm_ge": [0.06, 0.07, 0.08, 0.5], "mmpareto": [1e-5] * 4}
    line = next(line for line in render(res).splitlines() if line.startswith("- gradient processing"))
    assert "OGM-GE 0.075 s, 3.6% of its step" in line  # medians: 0.075 / 2.1
    assert "MMPareto" not in line  # under 1 ms: nothing done there


def test_a_pair_near_its_limit_gets_more_repetitions_appended_to_its_own():
    from benchmarks.bench import __main__ as bench
    from benchmarks.bench import compute

    pairs = compute.step_pairs(["joint+dagr-fixed", "ogm_ge", "dgl"])
    times = {"joint": [1.0] * 3, "joint+dagr-fixed": [1.0] * 3, "ogm_ge": [1.2, 0.9, 1.1],
             "joint (beside ogm_ge)": [1.0] * 3, "dgl": [1.0] * 3, "joint (beside dgl)": [1.0] * 3}
    seen = []

    def time_pair(pair, reps):
        seen.append((pair, reps))
        return {"ogm_ge": [1.04] * reps, "joint (beside ogm_ge)": [1.0] * reps}

    more = bench.more_step_reps(pairs, times, (("ogm_ge", 4),), time_pair)
    assert seen == [(("ogm_ge", "joint (beside ogm_ge)"), 4)]  # the pair alone, with the key of its own joint steps
    assert more == {"ogm_ge": 4}
    with pytest.raises(ValueError, match=r"more repetitions of 'agm' asked for, but the steps section has no "
                                         r"pair of it \(pairs: .*ogm_ge"):
        bench.more_step_reps(pairs, times, (("agm", 4),), time_pair)
    assert times["ogm_ge"] == [1.2, 0.9, 1.1, 1.04, 1.04, 1.04, 1.04]
    assert len(times["joint (beside ogm_ge)"]) == 7 and times["joint"] == [1.0] * 3  # the others untouched

    res = fake_results()
    res["steps"].update(times=times, more_reps=more)
    ogm = next(t for t in targets(res) if t.what == "OGM-GE step ÷ joint step")
    assert ogm.value == pytest.approx(1.04)  # the median of all 7 per-repetition ratios
    assert "OGM-GE's pair then ran 4 more repetitions on its own, 7 in all" in render(res)
