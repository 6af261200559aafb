"""What the portable numerics cost: the same training steps in fresh interpreters, portable vs native.

The mode must be chosen before torch is imported, so each measurement is a subprocess
(``python -m benchmarks.bench.numerics --mode M``) that trains joint training on the embedded default
(AV-Digits, the default grid's settings) for some steps after a warm-up, on one thread in both modes
(so the ratio isolates the kernel choice), and prints its seconds. The parent interleaves the modes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

MODES = ("portable", "native")


def time_here(steps: int, warmup: int) -> float:
    import tempfile

    import torch

    from benchmarks.grid.config import expand_grid, load_grid
    from benchmarks.grid.naming import run_dir_for
    from benchmarks.train.trainer import Trainer

    torch.set_num_threads(1)
    grid = load_grid("benchmarks/configs/avdigits.yaml", ["seeds=[0]", "methods={joint: {}}", "references=[]",
                                                           "dagr_arms=[none]"])
    cfg = expand_grid(grid)[0]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, run_dir_for(cfg, tmp))
        torch.set_num_threads(1)
        batches = list(trainer.data.train.batches(cfg.data.batch_size, shuffle=True, generator=trainer.generator))
        for batch in batches[:warmup]:
            trainer.train_step(batch)
        start = time.perf_counter()
        for batch in batches[warmup:warmup + steps]:
            trainer.train_step(batch)
        return time.perf_counter() - start


def measure(reps: int = 3, steps: int = 40, warmup: int = 5, timeout_s: float = 300) -> dict:
    """Seconds per mode over interleaved fresh processes, or the reason there are none."""
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(reps):
        for mode in MODES:
            cmd = [sys.executable, "-m", "benchmarks.bench.numerics", "--mode", mode, "--steps", str(steps),
                   "--warmup", str(warmup)]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=True).stdout
            except (subprocess.SubprocessError, OSError) as err:
                return {"error": f"{type(err).__name__}: {err}"}
            times[mode].append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return {"steps": steps, "what": "joint training on AV-Digits, one thread", "times": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    from benchmarks.core import numerics

    numerics.configure(args.mode)
    print(json.dumps({"mode": args.mode, "seconds": time_here(args.steps, args.warmup)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
