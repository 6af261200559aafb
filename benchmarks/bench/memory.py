"""Peak memory per method, each measured in a fresh subprocess (``python -m benchmarks.bench.memory``).

CPU: ``VmHWM`` of ``/proc/self/status`` (the process's peak resident set, everything torch and Python hold;
``ru_maxrss`` would not do: Linux carries the parent's peak into a forked-and-exec'd child) after set-up
(model, data, optimizer, the method's epoch-start hook, one batch) and after the training steps; the
difference is what the steps add at their peak (activations, gradients, optimizer state, the method's
buffers). CUDA: ``torch.cuda.max_memory_allocated`` (tensors only), with the peak reset after set-up.
Each step's seconds and minor page faults come back too (``benchmarks.core.allocator``: after the first
step, a step that re-uses freed memory faults in almost nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from .compute import Shapes


def rss_mb() -> float:
    """Peak resident set of this process so far, in MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; macOS would be bytes


def measure_here(name: str, shapes: Shapes, batch_size: int, steps: int, device: str,
                 encoder: str = "resnet18") -> dict[str, float]:
    import torch

    from .compute import first_batch, step_trainer

    trainer = step_trainer(name, shapes, batch_size, device, encoder=encoder)
    batch = first_batch(trainer)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        setup = torch.cuda.memory_allocated() / 2**20
    else:
        setup = rss_mb()
    seconds, faults = [], []
    for _ in range(steps):
        start, faulted = time.perf_counter(), minor_faults()
        trainer.train_step(batch)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        faults.append(minor_faults() - faulted)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = rss_mb()
    return {"setup_mb": setup, "peak_mb": peak, "step_mb": peak - setup, "step_s": seconds, "step_faults": faults}


def minor_faults() -> int:
    """Page faults of this process so far that the kernel served without I/O (fresh pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(name: str, shapes: Shapes, batch_size: int, steps: int, device: str, encoder: str = "resnet18",
            timeout_s: float = 120, env: dict[str, str] | None = None) -> dict[str, Any] | str:
    """Run :func:`measure_here` in a fresh interpreter (with ``env`` over this process's environment);
    the figures, or the reason there are none."""
    cmd = [sys.executable, "-m", "benchmarks.bench.memory", name, "--shape",
           f"{shapes.audio_h},{shapes.audio_w},{shapes.visual},{shapes.frames}",
           "--batch", str(batch_size), "--steps", str(steps), "--device", device, "--encoder", encoder]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout_s:.0f} s"
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def allocator_effect(names: tuple[str, ...], shapes: Shapes, batch_size: int, steps: int, reps: int,
                     encoder: str = "resnet18") -> dict[str, Any]:
    """Each variant's steps in fresh processes with freed memory kept (``keep``) and with glibc's default
    (``system``), the two modes alternated: per mode, every measurement (steps after the first count)."""
    from benchmarks.core import allocator

    rows: dict[str, dict[str, list]] = {name: {mode: [] for mode in allocator.MODES} for name in names}
    for rep in range(reps):
        for name in names:
            for mode in allocator.MODES if rep % 2 == 0 else allocator.MODES[::-1]:
                rows[name][mode].append(measure(name, shapes, batch_size, steps, "cpu", encoder,
                                                env=allocator.child_environment(mode)))
    return {"shapes": shapes.describe(), "batch": batch_size, "steps": steps, "reps": reps, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench.memory")
    parser.add_argument("name")
    parser.add_argument("--shape", required=True, help="audio_h,audio_w,visual,frames")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoder", default="resnet18")
    args = parser.parse_args(argv)
    from benchmarks.core import allocator

    allocator.configure()  # as the parent process chose ($GEOMREG_MALLOC)
    h, w, v, f = (int(x) for x in args.shape.split(","))
    print(json.dumps(measure_here(args.name, Shapes(h, w, v, f), args.batch, args.steps, args.device, args.encoder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
