"""The test-time degradations on known inputs, and the robustness evaluation of trained debug runs."""
import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks.__main__ import main as cli
from benchmarks.grid.config import load_grid, resolve_run
from benchmarks.run.runner import run_one
from benchmarks.train.perturbations import (PROTOCOL, AudioNoise, Cutout, FrameDrop, Missing, SpectrogramMask,
                                      SplitShape, cutout_box, frames_to_drop)
from benchmarks.train.robustness import RECORD, evaluate_run, grid_robustness, load_selected

ROWS = torch.arange(6)


def test_missing_zeroes_an_exact_nested_share_of_the_samples():
    z = torch.ones(10, 3)
    masks = []
    for share in (0.0, 0.3, 0.5, 1.0):
        out = Missing("audio", share, n=10, seed=0, name="missing_audio").embeddings(
            {"audio": z, "visual": z}, torch.arange(10))
        gone = (out["audio"] == 0).all(dim=1)
        assert int(gone.sum()) == round(10 * share)
        assert torch.equal(out["audio"][~gone], z[~gone]) and torch.equal(out["visual"], z)
        masks.append(gone)
    assert all((small <= large).all() for small, large in zip(masks, masks[1:]))  # a larger p contains a smaller


def test_noise_reaches_the_snr_exactly_and_is_seeded():
    x = torch.randn(6, 1, 8, 10, generator=torch.Generator().manual_seed(0)) * 3 + 7
    for snr in (20.0, 10.0, 0.0):
        noisy = AudioNoise(snr, seed=0, name="audio_noise").inputs({"audio": x}, ROWS)["audio"]
        noise = noisy - x
        for i in range(6):
            achieved = 10 * math.log10(x[i].var(unbiased=False) / noise[i].pow(2).mean())
            assert achieved == pytest.approx(snr, abs=1e-3)
    again = AudioNoise(10.0, seed=0, name="audio_noise").inputs({"audio": x}, ROWS)["audio"]
    other = AudioNoise(10.0, seed=1, name="audio_noise").inputs({"audio": x}, ROWS)["audio"]
    first = AudioNoise(10.0, seed=0, name="audio_noise").inputs({"audio": x}, ROWS)["audio"]
    assert torch.equal(again, first) and not torch.equal(other, first)


@pytest.mark.parametrize("axes, along, axis, length", [
    (("freq", "time"), "time", 2, 10), (("freq", "time"), "freq", 1, 8), (("time", "freq"), "time", 1, 8)])
def test_spectrogram_masks_cover_the_share_of_one_axis(axes, along, axis, length):
    x = torch.randn(6, 1, 8, 10, generator=torch.Generator().manual_seed(0))
    mask = SpectrogramMask(along, 0.3, axes, length, seed=0, name=f"{along}_mask")
    out = mask.inputs({"audio": x}, ROWS)["audio"]
    width = round(0.3 * length)
    assert mask.achieved == width / length
    for i in range(6):
        changed = (out[i] != x[i]).any(dim=3 - axis).squeeze(0)  # positions along the masked axis
        positions = torch.nonzero(changed).flatten()
        assert len(positions) == width and positions[-1] - positions[0] == width - 1  # one contiguous band
        band = out[i].narrow(axis, int(positions[0]), width)
        assert torch.allclose(band, x[i].mean().expand_as(band))


def test_frame_drop_removes_whole_frames_and_keeps_their_order():
    x = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(6, 4, 3, 2, 2).clone()  # frame t holds the value t
    out = FrameDrop(0.5, frames=4, seed=0, name="frame_drop").inputs({"visual": x}, ROWS)["visual"]
    assert out.shape == (6, 2, 3, 2, 2)
    kept = out[:, :, 0, 0, 0]
    assert (kept[:, 0] < kept[:, 1]).all() and len({tuple(k.tolist()) for k in kept}) > 1  # drawn per sample
    assert frames_to_drop(0.75, 3) == 2 and frames_to_drop(0.75, 2) == 1 and frames_to_drop(0.25, 8) == 2


def test_cutout_zeroes_one_rectangle_of_the_area_in_every_frame():
    x = torch.ones(6, 2, 3, 20, 20)
    for area in (0.1, 0.3, 0.5):
        cut = Cutout(area, (20, 20), seed=0, name="cutout")
        out = cut.inputs({"visual": x}, ROWS)["visual"]
        h, w = cutout_box(20, 20, area)
        assert abs(h * w / 400 - area) < 0.02 and cut.achieved == h * w / 400
        for i in range(6):
            zero = out[i] == 0
            assert int(zero[0, 0].sum()) == h * w and (zero == zero[0, 0]).all()  # same box, all frames/channels
            rows, cols = torch.nonzero(zero[0, 0], as_tuple=True)
            assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w


def test_frame_drop_is_skipped_with_a_reason_for_single_frames():
    family = next(f for f in PROTOCOL if f.name == "frame_drop")
    one_frame = SplitShape(10, "avdigits", {"audio": (1, 40, 51), "visual": (1, 20, 20)})
    assert family.skip_reason(one_frame) == "the clips have one frame"
    clips = SplitShape(10, "debug", {"audio": (1, 12, 12), "visual": (2, 3, 12, 12)})
    assert family.skip_reason(clips) is None


@pytest.fixture(scope="module")
def dgl_run(tmp_path_factory):
    raw = {"benchmark": "debug", "seed": 0, "data": {"name": "debug", "batch_size": 16},
           "model": {"encoder": "small_cnn", "width": 16}, "optim": {"lr": 0.05, "epochs": 2, "scheduler": "none"},
           "method": {"name": "dgl"}}
    status, run = run_one(resolve_run(raw), tmp_path_factory.mktemp("runs"))
    assert status == "done"
    return run


@pytest.fixture(scope="module")
def dgl_record(dgl_run):
    return evaluate_run(dgl_run, seed=0)


def test_clean_and_p0_equal_the_recorded_test_accuracy_at_the_selected_epoch(dgl_run, dgl_record):
    record = dgl_record
    rows = [json.loads(line) for line in dgl_run.metrics.read_text().splitlines()]
    best = max(rows, key=lambda r: (r["val"]["acc"], -r["epoch"]))  # best_val, by hand
    recorded = {k: v for k, v in best["test"].items() if k.startswith("acc")}
    assert record["epoch"] == best["epoch"] and record["clean"] == recorded == record["recorded_test"]
    p0 = record["families"]["missing_visual"]["points"][0]
    assert p0["level"] == 0.0 and {k: p0[k] for k in recorded} == recorded
    assert record["families"]["frame_drop"]["points"][2]["achieved"] == 0.5  # 2 frames: one dropped


def test_audio_missing_everywhere_leaves_the_bias_for_the_audio_head(dgl_run, dgl_record):
    """p = 1: every audio embedding is zero, so DGL's audio logits are the head's bias alone (one class)."""
    record = dgl_record
    _, trainer = load_selected(dgl_run)
    labels = trainer.data.test.labels
    bias_class = int(trainer.model.fusion.fc.bias.argmax())
    p1 = record["families"]["missing_audio"]["points"][-1]
    assert p1["level"] == 1.0 and p1["achieved"] == 1.0
    assert p1["acc_audio"] == pytest.approx((labels == bias_class).double().mean().item())


def test_results_do_not_depend_on_the_batch_size(dgl_run):
    _, trainer = load_selected(dgl_run)
    test = trainer.data.test
    degradation = Cutout(0.3, (12, 12), seed=0, name="cutout")
    big = trainer.evaluate_split(test, perturbation=degradation)
    trainer.cfg = replace(trainer.cfg, data=replace(trainer.cfg.data, eval_batch_size=7))
    assert trainer.evaluate_split(test, perturbation=degradation) == big


@pytest.mark.slow
def test_robustness_command_writes_records_tables_and_figures(tmp_path):
    overrides = ["--set", "methods={dgl: {}}", "--set", "references=[]", "--set", "run.optim.epochs=2",
                 "--set", "seeds=[0]"]
    runs, results = str(tmp_path / "runs"), str(tmp_path / "results")
    assert cli(["grid", "benchmarks/configs/debug.yaml", "--runs", runs, "--no-progress", *overrides]) == 0
    args = ["robustness", "benchmarks/configs/debug.yaml", "--runs", runs, "--results", results, *overrides]
    assert cli([*args, "--no-progress"]) == 0
    assert len(list(Path(runs).glob(f"debug/*/{RECORD}"))) == 2
    out = Path(results) / "debug" / "robustness"
    table = (out / "table.md").read_text()
    assert "equals the recorded test accuracy" in table and "DAGR (Pareto-balanced) Δ [95% CI]" in table
    assert "## DGL: paired statistics" in table
    per_run = pd.read_csv(out / "per_run.csv")
    assert set(per_run["family"]) == {f.name for f in PROTOCOL} and set(per_run["arm"]) == {"none", "dagr"}
    stats = pd.read_csv(out / "table.csv")
    assert set(stats.loc[stats["arm"] == "dagr", "baseline_arm"]) == {"none"}
    assert (out / "robustness_dgl.png").exists() and (out / "robustness_dgl.pdf").exists()
    again = grid_robustness(load_grid("benchmarks/configs/debug.yaml", overrides[1::2]), Path(runs))
    assert again.evaluated == 0 and len(again.results) == 2  # the records are read back, not measured again


def test_equal_differences_of_one_test_sample_are_not_a_sure_verdict():
    """Three seeds that each gain exactly one test sample of 1,000 (+0.1 point): with the spread floored at
    one sample the paired t is 0.1 / (0.1 / √3) = 1.732 (p = 0.225 with 2 df), not an infinitely sure test."""
    from benchmarks.report.robustness_report import Cells

    rows = [{"method": "DGL", "arm": arm, "seed": s, "family": "audio missing", "level": "0.5",
             "Multi": 50.0 + s + (0.1 if arm == "dagr" else 0.0)} for arm in ("none", "dagr") for s in range(3)]
    frame = pd.DataFrame(rows)
    floored = Cells(frame, resolution=0.1).against("DGL", "dagr", "none", "audio missing", "0.5", "Multi")
    assert floored.mean == pytest.approx(0.1) and floored.t_p_value == pytest.approx(1 - 1.732051 / math.sqrt(1.732051**2 + 2), abs=1e-5)
    assert floored.t_p_value > 0.2
    unfloored = Cells(frame).against("DGL", "dagr", "none", "audio missing", "0.5", "Multi")
    assert unfloored.t_p_value < 0.05 or math.isnan(unfloored.t_p_value)  # what the floor guards against
