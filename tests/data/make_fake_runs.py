"""Writes the fake run records behind tests/test_tables.py (run once; the output is committed).

Every number is chosen so that the expected table can be checked by hand: each cell's three seeds
are m-2, m, m+2 points, so the mean is m and the sample std is exactly 2.00.
Regenerate: python tests/data/make_fake_runs.py && python tests/test_tables.py --regenerate
"""
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).parent / "fake_runs" / "fake"

# (method, params, dagr, test accuracy (%) at the validation-selected epoch, per column)
CELLS = [
    ("unimodal", {"modality": "audio"}, False, {"acc_audio": 80}),
    ("unimodal", {"modality": "visual"}, False, {"acc_visual": 60}),
    ("joint", {}, False, {"acc_audio": 50, "acc_visual": 30, "acc": 85}),
    ("joint", {}, True, {"acc_audio": 55, "acc_visual": 36, "acc": 86}),
]


def write_run(method, params, dagr, seed, selected):
    label = f"{method}{'+dagr' if dagr else ''}-s{seed}-{params.get('modality', 'av')}"
    run = ROOT / label
    run.mkdir(parents=True, exist_ok=True)
    config = {"benchmark": "fake", "seed": seed, "data": {"name": "fake", "params": {"noise": 0.5}},
              "model": {"encoder": "small_cnn", "fusion": "concat"}, "optim": {"epochs": 2},
              "method": {"name": method, "params": params},
              "dagr": {"enabled": dagr, "lambda_disperse": 0.1, "lambda_anchor": 0.1, "combine": "sum"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    test_at_best_val = {k: (v + 2 * (seed - 1)) / 100 for k, v in selected.items()}
    if method == "unimodal":
        test_at_best_val["acc"] = next(iter(test_at_best_val.values()))
    # epoch 0 wins on validation, epoch 1 wins on test (its test numbers are 10 points higher)
    later = {k: v + 0.10 for k, v in test_at_best_val.items()}
    rows = [{"epoch": 0, "val": {"acc": 0.9}, "test": test_at_best_val},
            {"epoch": 1, "val": {"acc": 0.8}, "test": later}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # 1 s per epoch for joint training; DAGR adds 10 % (so the cost table reads 1.00/1.10/1.00/1.10)
    final = {"git": {"commit": "0123456789abcdef", "dirty": False}, "epochs": 2,
             "wall_time_s": 2.0 * (1.1 if dagr else 1.0) * (0.5 if method == "unimodal" else 1.0)}
    (run / "final.json").write_text(json.dumps(final))
    (run / "done").write_text("")


if __name__ == "__main__":
    for method, params, dagr, selected in CELLS:
        for seed in range(3):
            write_run(method, params, dagr, seed, selected)
    failed = ROOT / "joint-s3-broken"
    failed.mkdir(exist_ok=True)
    (failed / "failed.json").write_text(json.dumps({"label": "joint-s3", "error": "NonFiniteLossError: boom"}))
