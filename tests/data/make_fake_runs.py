"""Writes the fake run records behind tests/test_tables.py (run once; the output is committed).

Every number is chosen so that the expected table can be checked by hand. Each cell's three seeds
are m-2, m, m+2 points without DAGR and m-2, m+2, m with it, so each arm's mean is m and its sample
std exactly 2.00, and the per-seed differences are Δ, Δ+2, Δ-2 (mean Δ, std 2: the 95% interval is
Δ ± 4.302653 · 2 / √3 = Δ ± 4.97). The test split has 100 samples (one sample = 1 point); a run with
accuracy a% predicts the first a samples right, so samples fixed/broken are the per-seed
differences (Audio 5, 7, 3 fixed; Multi 1, 3 fixed and 1 broken).
Regenerate (from the repository root):
    PYTHONPATH=. python tests/data/make_fake_runs.py && PYTHONPATH=. python tests/test_tables.py --regenerate
"""
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from benchmarks.train.evaluation import PredictionLog

ROOT = Path(__file__).parent / "fake_runs" / "fake"
SAMPLES = 100
OFFSETS = {False: (-2, 0, 2), True: (-2, 2, 0)}  # per seed, points
HARDWARE = {"cpu": "Fake CPU 9000", "isa": "avx2", "torch_cpu_capability": "AVX2", "numerics": "portable",
            "threads": 2, "machine": "x86_64"}

# (method, params, dagr, test accuracy (%) at the validation-selected epoch, per column)
CELLS = [
    ("unimodal", {"modality": "audio"}, False, {"acc_audio": 80}),
    ("unimodal", {"modality": "visual"}, False, {"acc_visual": 60}),
    ("joint", {}, False, {"acc_audio": 50, "acc_visual": 30, "acc": 85}),
    ("joint", {}, True, {"acc_audio": 55, "acc_visual": 36, "acc": 86}),
]
HEADS = {"acc": "fused", "acc_audio": "audio", "acc_visual": "visual"}


def predictions(percent: dict[str, int]) -> dict[str, np.ndarray]:
    """Per head, the first a% of the samples right and the rest wrong."""
    labels = np.arange(SAMPLES, dtype=np.uint8) % 10
    wrong = (labels + 1) % 10
    return {"labels": labels,
            **{HEADS[k]: np.where(np.arange(SAMPLES) < a, labels, wrong).astype(np.uint8) for k, a in percent.items()}}


def write_run(method, params, dagr, seed, selected):
    label = f"{method}{'+dagr' if dagr else ''}-s{seed}"
    run = ROOT / f"{label}-{params.get('modality', 'av')}"
    run.mkdir(parents=True, exist_ok=True)
    config = {"benchmark": "fake", "seed": seed, "data": {"name": "fake", "params": {"noise": 0.5}},
              "model": {"encoder": "small_cnn", "fusion": "concat"}, "optim": {"epochs": 2},
              "method": {"name": method, "params": params},
              "dagr": {"enabled": dagr, "lambda_disperse": 0.1, "lambda_anchor": 0.1, "combine": "sum"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    percent = {k: v + OFFSETS[dagr][seed] for k, v in selected.items()}
    if method == "unimodal":
        percent["acc"] = next(iter(percent.values()))
    # epoch 0 wins on validation, epoch 1 wins on test (its test numbers are 10 points higher)
    later = {k: v + 10 for k, v in percent.items()}
    rows = [{"epoch": 0, "val": {"acc": 0.9}, "test": {k: v / 100 for k, v in percent.items()}},
            {"epoch": 1, "val": {"acc": 0.8}, "test": {k: v / 100 for k, v in later.items()}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    log = PredictionLog()
    for epoch, accuracies in enumerate((percent, later)):
        log.add(epoch, predictions(accuracies))
    log.write(run / "test_predictions.npz")
    # 1 s per epoch for joint training; DAGR adds 10 % (so the cost table reads 1.00/1.10/1.00/1.10)
    final = {"label": label, "run_id": f"{seed}{'d' if dagr else 'n'}{params.get('modality', 'av')}",
             "git": {"commit": "0123456789abcdef", "dirty": False}, "epochs": 2,
             "environment": {"torch": "fake", "hardware": HARDWARE},
             "wall_time_s": 2.0 * (1.1 if dagr else 1.0) * (0.5 if method == "unimodal" else 1.0)}
    (run / "final.json").write_text(json.dumps(final))
    (run / "done").write_text("")


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for method, params, dagr, selected in CELLS:
        for seed in range(3):
            write_run(method, params, dagr, seed, selected)
    failed = ROOT / "joint-s3-broken"
    failed.mkdir(exist_ok=True)
    (failed / "failed.json").write_text(json.dumps({"label": "joint-s3", "error": "NonFiniteLossError: boom"}))
