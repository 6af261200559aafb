"""Golden-file test of the table builder on committed fake records (tests/data/fake_runs).

Each cell's seeds are m-2, m, m+2 (with DAGR: m-2, m+2, m) so the expected means, std (2.00),
paired differences and intervals are checkable by hand; the test-selected table is 10 points higher
everywhere (see tests/data/make_fake_runs.py). Regenerate the expected file after a deliberate
format change (from the repository root):
    PYTHONPATH=. python tests/test_tables.py --regenerate
"""
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.report.summaries import load_records, per_seed_columns
from benchmarks.report.tables import render

DATA = Path(__file__).parent / "data"
EXPECTED = DATA / "expected_table.md"


def render_fake(out: Path) -> str:
    records, failed = load_records(DATA / "fake_runs" / "fake")
    return render(records, out, "fake: golden table", failed=failed, missing=["joint+dagr-s3"])


def test_table_matches_golden_file(tmp_path):
    assert render_fake(tmp_path) == EXPECTED.read_text()


def test_hand_computed_cells(tmp_path):
    text = re.sub(" +", " ", render_fake(tmp_path))
    # without DAGR seeds m-2, m, m+2; with DAGR m-2, m+2, m: differences Δ, Δ+2, Δ-2 (sd 2), so the
    # interval is Δ ± 4.302653 * 2 / sqrt(3) = Δ ± 4.97
    # Each interval of Audio and Visual excludes 0 on its own (paired-t p 0.0494 and 0.0351), but the table's
    # three Δ cells are one family: Holm gives 3 · 0.0351 = 0.105 and max(0.105, 2 · 0.0494) = 0.105
    assert "| Joint training | 50.00 ± 2.00 | 55.00 ± 2.00 | +5.00 [+0.03, +9.97] within noise | 30.00 ± 2.00 " \
           "| 36.00 ± 2.00 | +6.00 [+1.03, +10.97] within noise | 85.00 ± 2.00 | 86.00 ± 2.00 " \
           "| +1.00 [-3.97, +5.97] within noise |" in text
    assert "| Visual | 3 | +6.00 [+1.03, +10.97] within noise | 0.0351 | 0.105 (3) |" in text
    # Multi differences 1, 3, -1: |±1±3±1| >= 3 in 6 of 8 sign patterns; samples: 1 + 3 fixed, 1 broken,
    # exact p = 2 * (C(5,0) + C(5,1)) / 2^5 = 0.375. Audio: 5 + 7 + 3 fixed, none broken: 2 / 2^15
    assert "| Multi | 3 | +1.00 [-3.97, +5.97] within noise | 0.478 | 0.478 (3) | 0.750 (0.250) | 2/3 | 4 / 1 | 0.375 |" in text
    assert "| Audio | 3 | +5.00 [+0.03, +9.97] within noise | 0.0494 | 0.105 (3) | 0.250 (0.250) | 3/3 | 15 / 0 | 6.1e-05 |" in text
    assert "| Joint training | 1.00 | 1.00 | 1.10 | 1.10 |" in text
    assert "- FAILED: joint-s3 (NonFiniteLossError: boom)" in text
    assert "- MISSING: joint+dagr-s3" in text
    assert "- hardware (12 runs): cpu `Fake CPU 9000`, vendor `unknown`, isa `avx2`" in text and "MIXED" not in text
    # 100 test samples at (85 + 86) / 2 %: sqrt(0.855 * 0.145 / 100) = 3.52 points
    assert "- test set: 100 samples (one sample: 1 pt); at 85.5% one evaluation has a binomial standard " \
           "error of 3.52 points" in text
    csv = pd.read_csv(tmp_path / "table.csv")
    paper = csv[(csv.selection == "best_test") & (csv.method == "Joint training") & (csv.arm == "none")
            & (csv.column == "Multi")]
    assert paper["mean"].item() == 95.0 and paper["n"].item() == 3
    delta = csv[(csv.selection == "best_val") & (csv.arm == "dagr") & (csv.column == "Multi")].iloc[0]
    assert (delta.baseline_arm, delta.differences, delta.seeds, delta.verdict) == ("none", "1.0000;3.0000;-1.0000",
                                                                                   "0;1;2", "within noise")
    assert (delta.t_p_value, delta.holm_p_value, delta.family_size) == pytest.approx((0.4778, 0.4778, 3), abs=1e-4)
    assert (delta.fixed, delta.broken, delta.p_value) == (4, 1, 0.75)
    tex = (tmp_path / "table.tex").read_text()
    assert tex.startswith("\\begin{tabular}") and "+1.00 [-3.97, +5.97] within noise" in tex


def test_per_seed_csv_has_one_row_per_finished_run(tmp_path):
    render_fake(tmp_path)
    rows = pd.read_csv(tmp_path / "per_seed.csv")
    assert len(rows) == 12 and list(rows.columns) == per_seed_columns()
    dagr = rows[(rows.arm == "dagr") & (rows.seed == 1)].iloc[0]
    assert (dagr.grid, dagr.benchmark, dagr.label, dagr.method) == (tmp_path.name, "fake", "joint+dagr-s1", "joint")
    # seed 1 with DAGR: m + 2 at the validation-selected epoch 0, 10 points more at the test-selected epoch 1
    assert (dagr.best_val_epoch, dagr.best_val_test_acc, dagr.best_val_test_acc_audio) == (0, 0.88, 0.57)
    assert (dagr.best_test_epoch, dagr.best_test_test_acc, dagr.last_epoch, dagr.best_val_val_acc) == (1, 0.98, 1, 0.9)
    assert pd.isna(dagr.best_val_val_acc_audio)  # not recorded
    assert (dagr.hw_cpu, dagr.hw_numerics, dagr.hw_threads) == ("Fake CPU 9000", "portable", 2)
    audio_only = rows[(rows.method == "unimodal") & rows.label.str.startswith("unimodal-s0")]
    assert audio_only.best_val_test_acc_visual.isna().sum() == 1


if __name__ == "__main__" and "--regenerate" in sys.argv:
    import tempfile

    EXPECTED.write_text(render_fake(Path(tempfile.mkdtemp())))


def test_tables_of_a_trained_debug_grid_pair_runs_by_seed_and_by_sample(tmp_path):
    from benchmarks.__main__ import main as cli

    common = ["benchmarks/configs/debug.yaml", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "out"),
              "--set", "seeds=[0, 1]", "--set", "run.optim.epochs=1", "--set", "references=[]",
              "--set", "methods={joint: {}, ogm_ge: {}}", "--set", "dagr_arms=[none]"]
    assert cli(["grid", *common, "--no-progress"]) == 0
    assert cli(["tables", *common, "--against", "joint"]) == 0
    text = re.sub(" +", " ", (tmp_path / "out" / "debug" / "table.md").read_text())
    assert "## Against Joint training (validation-selected)" in text and "| OGM-GE | no regularizer |" in text
    assert "- test set: " in text and "- hardware" in text
    per_seed = pd.read_csv(tmp_path / "out" / "debug" / "per_seed.csv")
    assert len(per_seed) == 4 and set(per_seed.seed) == {0, 1} and per_seed.run_id.str.len().eq(12).all()
    # sample counts agree with the seed differences: fixed − broken = Σ_s d_s · (test samples) / 100
    csv = pd.read_csv(tmp_path / "out" / "debug" / "table.csv").dropna(subset=["baseline_arm"])
    assert list(csv.column) == ["Audio", "Visual", "Multi"] and set(csv.baseline_method) == {"Joint training"}
    samples = int(re.search(r"test set: (\d+) samples", text).group(1))
    for row in csv.itertuples():
        total = sum(float(d) for d in row.differences.split(";")) * samples / 100
        assert row.fixed - row.broken == pytest.approx(total, abs=1e-6), row
    assert cli(["tables", *common, "--against", "pmr"]) == 2  # not a method of the grid


def test_grid_time_is_recorded_only_for_a_grid_trained_whole_and_quoted_by_the_table(tmp_path):
    from benchmarks.report.tables import grid_time_lines
    from benchmarks.core.records import GRID_TIME, atomic_write_json
    from benchmarks.run.runner import GridReport, grid_time_record

    whole = GridReport(done=["a", "b"], wall_time_s=612.34)
    assert grid_time_record(GridReport(done=["a"], skipped=["b"]), 2, "local") is None  # resumed
    assert grid_time_record(GridReport(done=["a"], failed=["b"]), 2, "local") is None
    assert grid_time_record(GridReport(), 2, "local") is None  # nothing trained
    record = grid_time_record(whole, 2, "local")
    assert (record["runs"], record["jobs"], record["wall_s"]) == (2, 2, 612.3)
    assert grid_time_lines(tmp_path / GRID_TIME) == []
    atomic_write_json(tmp_path / GRID_TIME, {**record, "cpu": "Some CPU", "avx512": False, "numerics": "portable"})
    line = grid_time_lines(tmp_path / GRID_TIME)[0]
    assert "**10 min 12 s**" in line and "2 runs, 2 at a time" in line and "Some CPU (without AVX-512)" in line


def test_per_seed_leaves_swept_keys_a_run_does_not_read_blank(debug_raw):
    """A sweep over DAGR's temperature keeps its reference runs without DAGR: their config still holds
    the default t, which they never read, so per_seed.csv leaves it blank."""
    from benchmarks.report.summaries import swept_values
    from benchmarks.grid.config import resolve_run
    from benchmarks.core.strict import to_dict

    with_dagr = to_dict(resolve_run({**debug_raw, "dagr": {"enabled": True, "t": 2.0}}))
    without = to_dict(resolve_run({**debug_raw, "dagr": {"enabled": False, "t": 2.0}}))
    assert swept_values(with_dagr, ["dagr.t", "seed"]) == {"dagr.t": 2.0, "seed": 0}
    assert swept_values(without, ["dagr.t", "seed"]) == {"dagr.t": None, "seed": 0}


def test_run_title_names_a_references_modality(debug_raw):
    from benchmarks.report.summaries import run_title
    from benchmarks.grid.config import resolve_run
    from benchmarks.core.strict import to_dict

    reference = resolve_run({**debug_raw, "method": {"name": "unimodal", "params": {"modality": "visual"}}})
    assert run_title(reference.label, to_dict(reference)) == "unimodal-s0 (visual)"
    joint = resolve_run(debug_raw)
    assert run_title(joint.label, to_dict(joint)) == "joint-s0"


def test_verdicts_of_few_seeds_are_checked_against_the_powered_grid(tmp_path):
    from benchmarks.report.tables import agreement

    assert agreement("better", "better") == agreement("within noise", "within noise") == "agrees"
    assert agreement("within noise", "worse") == "not detected here"
    assert agreement("better", "within noise") == agreement("better", "worse") == "DISAGREES"
    powered = tmp_path / "powered"
    powered.mkdir()
    pd.DataFrame([{"selection": "best_val", "method": "Joint training", "arm": "dagr", "column": column,
                   "baseline_method": "Joint training", "baseline_arm": "none", "pairs": 12, "delta": delta,
                   "ci_low": delta - 0.4, "ci_high": delta + 0.4, "verdict": verdict}
                  for column, delta, verdict in (("Audio", 2.0, "better"), ("Visual", 0.1, "within noise"))
                  ]).to_csv(powered / "table.csv", index=False)
    records, failed = load_records(DATA / "fake_runs" / "fake")
    text = re.sub(" +", " ", render(records, tmp_path / "fake", "t", powered="powered"))
    section = text.split("## Against the powered grid `powered`")[1].split("\n## ")[0]
    assert "Result: 1 agrees, 1 not detected here." in section  # Multi is not in the powered table
    # here the Audio Δ 5 is within noise (Holm over 3 cells); its differences 5, 7, 3 have sd 2, and the
    # 80% detectable Δ at Holm's first level 0.05/3 is (t(1 − 0.05/6, 2) + t(0.8, 2)) · 2 / sqrt 3
    assert "| Joint training | DAGR (Pareto-balanced) − no regularizer | Audio | +5.00 [+0.03, +9.97] within noise " \
           "| ±10.06 | +2.00 [+1.60, +2.40] better | not detected here |" in section
    assert "Not available" in render(records, tmp_path / "other", "t", powered="missing")


def test_two_arms_compared_directly_form_a_family_of_their_own(tmp_path):
    records, _ = load_records(DATA / "fake_runs" / "fake")
    text = re.sub(" +", " ", render(records, tmp_path, "t", arm_comparisons=[("none", "dagr")]))
    section = text.split("## no regularizer against DAGR (Pareto-balanced) (validation-selected)")[1].split("\n## ")[0]
    # the main table's differences with the sign turned (treated = none): Audio -5, -7, -3; Visual -6 ± 2; Multi
    # -1, -3, +1; Holm over this table's 3 cells alone, as in the main table (3 · 0.0351 = 0.105), not over 6
    assert "| Joint training | -5.00 [-9.97, -0.03] within noise | -6.00 [-10.97, -1.03] within noise " \
           "| -1.00 [-5.97, +3.97] within noise |" in section
    stats = text.split("## Paired statistics (validation-selected)")[1]
    assert "| Joint training | no regularizer − DAGR (Pareto-balanced) | Visual | 3 | -6.00 [-10.97, -1.03] " \
           "within noise | 0.0351 | 0.105 (3) |" in stats
    csv = pd.read_csv(tmp_path / "table.csv")
    direct = csv[(csv.selection == "best_val") & (csv.arm == "none") & (csv.baseline_arm == "dagr")]
    assert sorted(direct.column) == ["Audio", "Multi", "Visual"] and set(direct.family_size) == {3}
