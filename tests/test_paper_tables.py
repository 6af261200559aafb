"""Ablation (arm) tables, the published-numbers comparison, comparisons against a reference method,
the hardware header and the sensitivity table, on records built by hand (two seeds per cell, so
means, stds, paired intervals (t_{0.975, 1} = 12.706205) and sign-flip p are checkable by hand)."""
import re

import pandas as pd
import pytest

from benchmarks.report.paper import PaperRow, PaperTable, load_paper_table
from benchmarks.report.tables import render
from benchmarks.grid.config import DAGR_ARMS


def record(method, arm, seed, multi, audio=50.0, visual=40.0, tau=0.5):
    dagr = {"enabled": False, "lambda_disperse": 0.1, "lambda_anchor": 0.1, "weighting": "pareto", "terms": "both",
            "tau": tau, "t": 2.0}
    dagr.update(DAGR_ARMS[arm])
    test = {"acc": multi / 100, "acc_audio": audio / 100, "acc_visual": visual / 100}
    # epoch 0 wins on validation; epoch 1 wins on test and is 10 points higher (the paper protocol)
    rows = [{"epoch": 0, "val": {"acc": 0.9 - 0.01 * seed}, "test": test},
            {"epoch": 1, "val": {"acc": 0.5}, "test": {k: v + 0.1 for k, v in test.items()}}]
    config = {"benchmark": "fake", "seed": seed, "method": {"name": method, "params": {}}, "dagr": dagr,
              "data": {"name": "fake", "params": {"root": "/somewhere"}}, "model": {"encoder": "e", "fusion": "concat"},
              "optim": {"epochs": 2}}
    return {"config": config, "metrics": rows,
            "final": {"git": {"commit": "abc", "dirty": False}, "epochs": 2, "wall_time_s": 2.0}}


def cells(text):
    return re.sub(" +", " ", text)


def test_arm_table_and_paper_comparison(tmp_path):
    multi = {"none": (69.0, 71.0), "disperse": (71.0, 75.0), "dagr": (74.0, 76.0)}  # seeds 0, 1
    records = [record("dgl", arm, seed, values[seed]) for arm, values in multi.items() for seed in (0, 1)]
    paper = PaperTable(source="test", caption="Hand table.", rows=[
        PaperRow(title="DGL", method="dgl", multi=77.0, multi_std=1.0),
        PaperRow(title="DGL + DAGR", method="dgl", arm="dagr", multi=78.0),
        PaperRow(title="AGM", multi=69.0)])
    text = cells(render(records, tmp_path, "t", arms=["none", "disperse", "anchor", "dagr"], paper=paper,
                        rows=["DGL"]))
    # validation-selected (epoch 0). dispersion: differences 2, 4 (sd sqrt 2), interval
    # 3 ± 12.706205 * sqrt(2) / sqrt(2); DAGR: differences 5, 5, a zero-width interval
    assert "| DGL | dispersion only | 50.00 ± 0.00 | +0.00 [+0.00, +0.00] within noise | 40.00 ± 0.00 " \
           "| +0.00 [+0.00, +0.00] within noise | 73.00 ± 2.83 | +3.00 [-9.71, +15.71] within noise |" in text
    assert "| DGL | DAGR (Pareto-balanced) | 50.00 ± 0.00 | +0.00 [+0.00, +0.00] within noise " \
           "| 40.00 ± 0.00 | +0.00 [+0.00, +0.00] within noise | 75.00 ± 1.41 | +5.00 [+5.00, +5.00] no test |" in text
    assert "| DGL | anchoring only | – | – | – | – | – | – |" in text
    # sign-flip p of (2, 4): |±2±4| >= 6 in 2 of 4 patterns; ties counted
    # paired t of (2, 4): t = 3 / (sqrt 2 / sqrt 2) = 3, df 1: p = 1 − (2/π) atan 3 = 0.2048; its family is the
    # table's 5 tested Δ cells (the DAGR arm's Multi cell has no spread: no test), so Holm gives min(1, 5 · 0.2048)
    assert "| DGL | dispersion only − no regularizer | Multi | 2 | +3.00 [-9.71, +15.71] within noise | 0.205 | 1 (5) " \
           "| 0.500 (0.500) | 2/2 | – | – |" in text
    assert "| DGL | dispersion only − no regularizer | Audio | 2 | +0.00 [+0.00, +0.00] within noise | 1 | 1 (5) " \
           "| 1.000 (0.500) | 0/2 (2 tied) |" in text  # no difference at all: p 1
    # beside the paper: ours test-selected (epoch 1, +10 points) − paper. DGL + DAGR: 86 ± 1.41 (n 2) against
    # an exact 78: one-sample interval 8 ± 12.706205 * 1.41421 / sqrt(2)
    assert "| DGL + DAGR | 60.00 ± 0.00 | – | – | 50.00 ± 0.00 | – | – | 85.00 ± 1.41 | 78.00 " \
           "| +7.00 [-5.71, +19.71] within noise |" in text
    # DGL: Welch with df (2/2 + 1/3)^2 / ((2/2)^2 / 1 + (1/3)^2 / 2) = 1.684: wider than df 2 (± 4.97)
    dgl = next(line for line in text.splitlines() if line.startswith("| DGL | 60.00"))
    low, high = map(float, dgl.split("[")[1].split("]")[0].split(", "))
    assert (low + high) / 2 == pytest.approx(3.0, abs=0.01) and high - 3.0 > 4.302653 * (4 / 3) ** 0.5
    assert "| AGM — paper only, not run here | – | – | – | – | – | – | – | 69.00 | – |" in text
    assert "/somewhere" not in text  # where the data lies is not part of the result


def test_against_a_reference_method_pairs_by_seed_within_each_arm(tmp_path):
    records = [record(method, arm, seed, multi)
               for method, arm, values in (("dgl", "none", (70.0, 72.0)), ("joint", "none", (68.0, 71.0)),
                                           ("dgl", "dagr", (71.0, 73.0)), ("joint", "dagr", (70.0, 70.0)))
               for seed, multi in zip((0, 1), values)]
    text = cells(render(records, tmp_path, "t", against="dgl"))
    assert "## Against DGL (validation-selected)" in text
    # joint − DGL: no regularizer 68-70, 71-72 -> -2, -1 (sd 0.7071, ± 12.706205 * 0.5 = 6.35);
    # DAGR: 70-71, 70-73 -> -1, -3 (sd 1.4142, ± 12.706205)
    assert "| Joint training | no regularizer | +0.00 [+0.00, +0.00] within noise | +0.00 [+0.00, +0.00] within " \
           "noise | -1.50 [-7.85, +4.85] within noise |" in text
    assert "| Joint training | DAGR (Pareto-balanced) | +0.00 [+0.00, +0.00] within noise " \
           "| +0.00 [+0.00, +0.00] within noise | -2.00 [-14.71, +10.71] within noise |" in text
    # sign-flip p of (-2, -1): |±2±1| >= 3 in 2 of 4 patterns
    # paired t of (-2, -1): t = -1.5 / 0.5 = -3, df 1: p = 0.2048; Holm over the against table's 6 Δ cells: 1
    assert "| Joint training | − DGL (both no regularizer) | Multi | 2 | -1.50 [-7.85, +4.85] within noise | 0.205 " \
           "| 1 (6) | 0.500 (0.500) | 0/2 |" in text
    assert "| DGL | no regularizer |" not in text.split("## Against DGL")[1].split("##")[0]


def test_header_warns_loudly_about_mixed_hardware(tmp_path):
    records = [record("joint", arm, seed, 80.0) for arm in ("none", "dagr") for seed in (0, 1)]
    for r in records:
        r["final"]["environment"] = {"hardware": {"cpu": "A", "isa": "avx2", "torch_cpu_capability": "AVX2",
                                                  "numerics": "portable", "threads": 2, "machine": "x86_64"}}
    records[3]["final"]["environment"]["hardware"].update(isa="avx512", threads=4)
    del records[0]["final"]["environment"]  # an older record without the hardware fields
    text = render(records, tmp_path, "t")
    assert "- hardware (2 runs): cpu `A`, vendor `unknown`, isa `avx2`" in text and "- hardware (1 runs): cpu `None`" in text
    assert "**WARNING: MIXED HARDWARE/NUMERICS — these tables combine runs that differ in cpu, vendor, isa, " \
           "torch_cpu_capability, numerics, threads, machine;" in text


def test_sweep_grid_gets_the_validation_choice(tmp_path):
    # tau 0.25 is best on validation, tau 1.0 on test: the choice must follow validation
    records = [record("joint", "dagr", seed, 90.0, tau=tau) for tau in (0.5, 0.25, 1.0) for seed in (0, 1)]
    for r in records:
        tau = r["config"]["dagr"]["tau"]
        r["metrics"][0]["val"]["acc"] += {0.5: 0.0, 0.25: 0.05, 1.0: -0.05}[tau]
        r["metrics"][0]["test"]["acc"] += {0.5: 0.0, 0.25: -0.02, 1.0: 0.04}[tau]
    records[1]["metrics"][0]["val"]["acc"] += 0.08  # tau 0.5, seed 1: 97 instead of 89
    text = cells(render(records, tmp_path, "t", sweep=["dagr.tau"]))
    chosen = [line for line in text.splitlines() if "best on validation" in line]
    assert len(chosen) == 1 and "| 0.25 |" in chosen[0] and "| 94.50 ± 0.71 |" in chosen[0]
    # validation against the chosen point (95, 94): tau 0.5 (90, 97) -> -5, +3, sd 5.657, ± 12.706205 * 4;
    # tau 1.0 (85, 84) -> -10, -10
    assert "| 0.5 | 2 | 93.50 ± 4.95 | -1.00 [-51.82, +49.82] within noise |" in text
    assert "| 1.0 | 2 | 84.50 ± 0.71 | -10.00 [-10.00, -10.00] no test |" in text  # no spread to test
    assert "- Joint training, DAGR (Pareto-balanced): chosen dagr.tau = 0.25; 1 of 2 other points are within " \
           "noise of it on validation: the choice is not distinguishable from them." in text
    per_seed = pd.read_csv(tmp_path / "per_seed.csv")
    assert list(per_seed["dagr.tau"]) == [0.5, 0.5, 0.25, 0.25, 1.0, 1.0]


def test_published_numbers_file_is_complete():
    table1 = load_paper_table("table1_cremad")
    assert [r.method for r in table1.rows] == ["gblending", "ogm_ge", "pmr", "agm", "mmpareto", "dnr", "dgl", "dgl"]
    assert table1.rows[-1].cell("Multi") == "78.16 ± 0.38" and table1.rows[0].cell("Audio") == "58.78"
    table4 = load_paper_table("table4_cremad")
    assert [r.arm for r in table4.rows] == ["none", "disperse", "anchor", "dagr"]
    assert load_paper_table("table1_ks").rows[-1].multi == 77.00
