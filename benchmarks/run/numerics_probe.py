"""``geomreg-bench numerics-probe``: digests of the kernels a run uses, to tell which machines compute the same bits.

Each numerics setting is probed in a fresh interpreter (its variables must be set before torch is
imported). The child digests (SHA-256 of the output bytes, 16 hex digits):

* ``ops``: every kernel family the suite's training reads, on fixed seeded inputs at the shapes it
  uses: convolutions (forward, both backward passes) of the small CNN and of ResNet-18, the fusion
  head's linear layer, batch norm, max-pool, cross-entropy, elementwise exp/log with reductions, matrix
  products at DAGR's and the geometry metrics' shapes, the float64 distances of the semantic margin,
  the dot products of the min-norm (Pareto) rules, DAGR's losses and its Pareto gradient through a
  small encoder, and k-means (D&R's diagnosis, scikit-learn on OpenBLAS);
* ``train``: the weights after a few steps of every method of the default grid, without and with DAGR,
  trained by the suite's own trainer (its data, model, method hooks and optimizer).

Two machines compute the same bits in a setting when every digest is equal; the first op that differs
names the kernel that breaks it. ``--compare A.json B.json`` prints that for two probe files.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..core import numerics
from ..core.strict import ConfigError

# Settings a probe can compare: the portable mode as shipped, the processor's native kernels, and
# portable variants with one knob changed (what docs/performance.md reports for each).
SETTINGS: dict[str, dict[str, str]] = {
    "portable": {},
    "native": {},
    "portable-mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},  # MKL's vendor-neutral path: still not across vendors
}
TRAIN_METHODS = ("joint", "gblending", "ogm_ge", "pmr", "agm", "mmpareto", "dnr", "dgl")


def digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def conv_digests(rnd) -> dict[str, str]:
    """Conv forward and both backward passes at the small CNN's and ResNet-18's shapes."""
    import torch
    import torch.nn.functional as F

    out = {}
    for name, x_shape, w_shape, stride, pad in [
        ("conv_small_stem", (64, 1, 40, 51), (8, 1, 3, 3), 2, 1),
        ("conv_small_mid", (64, 16, 10, 12), (32, 16, 3, 3), 1, 1),
        ("conv_resnet_conv1", (16, 1, 257, 188), (64, 1, 7, 7), 2, 3),
        ("conv_resnet_layer3", (16, 256, 17, 12), (256, 256, 3, 3), 1, 1),
    ]:
        x, w = rnd(*x_shape).requires_grad_(), rnd(*w_shape).mul_(0.1).requires_grad_()
        y = F.conv2d(x, w, stride=stride, padding=pad)
        gx, gw = torch.autograd.grad(y, (x, w), rnd(*y.shape))
        out[f"{name}.fwd"], out[f"{name}.bwd_input"], out[f"{name}.bwd_weight"] = digest(y), digest(gx), digest(gw)
    return out


def layer_digests(rnd, generator) -> dict[str, str]:
    """The fusion head, batch norm, max-pool, the loss and elementwise maths."""
    import torch
    import torch.nn.functional as F

    out = {}
    x, w, b = rnd(64, 128).requires_grad_(), rnd(10, 128).requires_grad_(), rnd(10).requires_grad_()
    y = F.linear(x, w, b)
    gx, gw = torch.autograd.grad(y, (x, w), rnd(64, 10))
    out["linear.fwd"], out["linear.bwd_input"], out["linear.bwd_weight"] = digest(y), digest(gx), digest(gw)
    x = rnd(64, 16, 20, 25).requires_grad_()
    y = torch.nn.BatchNorm2d(16).train()(x)
    out["batchnorm.fwd"], out["batchnorm.bwd"] = digest(y), digest(torch.autograd.grad(y, x, rnd(*y.shape))[0])
    y = F.max_pool2d(x, 2)
    out["maxpool.fwd"], out["maxpool.bwd"] = digest(y), digest(torch.autograd.grad(y, x, rnd(*y.shape))[0])
    logits, target = rnd(64, 10).requires_grad_(), torch.randint(0, 10, (64,), generator=generator)
    loss = F.cross_entropy(logits, target)
    out["cross_entropy"] = digest(loss, torch.autograd.grad(loss, logits)[0])
    z = rnd(1000, 32)
    out["exp_log_sum"] = digest(torch.exp(-z).sum(), torch.log1p(z.abs()).mean(0))
    return out


def product_digests(rnd) -> dict[str, str]:
    """Matrix and dot products: DAGR's Gram matrix, the metrics' distances, the min-norm rules' dots."""
    import torch

    out = {}
    for b, d in [(64, 64), (16, 512), (1000, 64)]:
        z = rnd(b, d)
        out[f"gram_{b}x{d}"] = digest(z @ z.T)
    z = rnd(1000, 64).double()
    out["cdist_float64_1000x64"] = digest(torch.cdist(z, z))
    a, c = rnd(300_001), rnd(300_001)
    out["vdot"] = digest(torch.vdot(a, c), torch.vdot(a, a))
    return out


def dagr_digests(rnd) -> dict[str, str]:
    """DAGR's losses and its Pareto gradient, pulled back through two small encoders."""
    import torch

    from geomreg import DAGR

    encoders = {m: torch.nn.Sequential(torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
                for m in ("audio", "visual")}
    for enc in encoders.values():
        for p in enc.parameters():
            p.data = rnd(*p.shape).mul_(0.2)
    embeddings = {m: enc(rnd(64, 40)) for m, enc in encoders.items()}
    dagr = DAGR()
    terms = dagr(embeddings)
    geom = dagr.geometry_gradients(terms, embeddings, {m: enc.parameters() for m, enc in encoders.items()})
    return {"dagr.terms": digest(*(terms[k] for k in sorted(terms))),
            "dagr.pareto_gradient": digest(*geom.tensors(), *geom.alphas.values())}


def kmeans_digest() -> dict[str, str]:
    """D&R's diagnosis: scikit-learn's k-means (OpenBLAS) on fixed features."""
    import numpy as np

    from baselines.dnr import kmeans_purity

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    features = rng.normal(size=(2000, 64)) + labels[:, None] * 0.3
    purity = np.float64(kmeans_purity(features, labels, 10, 10))
    return {"kmeans_purity": hashlib.sha256(purity.tobytes()).hexdigest()[:16]}


def op_digests() -> dict[str, str]:
    import torch

    generator = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=generator)

    return {**conv_digests(rnd), **layer_digests(rnd, generator), **product_digests(rnd), **dagr_digests(rnd),
            **kmeans_digest()}


def train_digests(steps: int) -> tuple[dict[str, str], float]:
    """Weights after ``steps`` training steps of every method without and with DAGR (default grid, seed 0),
    and the mean seconds per step."""
    import torch

    from ..grid.config import expand_grid, load_grid
    from ..grid.naming import run_dir_for
    from ..train.trainer import Trainer

    grid = load_grid("benchmarks/configs/avdigits.yaml", ["seeds=[0]", "references=[]"])
    out, seconds, total = {}, 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in expand_grid(grid):
            trainer = Trainer(cfg, run_dir_for(cfg, tmp))
            batches = trainer.data.train.batches(cfg.data.batch_size, shuffle=True, generator=trainer.generator)
            start = time.perf_counter()
            trainer.method.on_epoch_start(0)
            for _, batch in zip(range(steps), batches):
                trainer.train_step(batch)
            seconds += time.perf_counter() - start
            total += steps
            state = trainer.model.state_dict()
            out[cfg.label] = digest(*[state[k].float() for k in sorted(state)])
    return out, seconds / max(total, 1)


def probe_here(steps: int) -> dict[str, Any]:
    """The digests of this process's setting (the child's work)."""
    import torch

    numerics.pin_threads()
    torch.set_num_threads(1)  # the native setting too: the probe compares kernels, not thread counts
    ops = op_digests()
    train, s_per_step = train_digests(steps)
    return {"ops": ops, "train": train, "s_per_step": s_per_step,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "environment": {k: os.environ.get(k) for k in numerics.PORTABLE_ENVIRONMENT}}


def probe(settings: list[str], steps: int, announce=print) -> dict[str, Any]:
    """Probe each setting in a fresh interpreter; a setting that fails records its error and the rest go on."""
    results = {}
    for name in settings:
        mode = "native" if name == "native" else "portable"
        env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENVIRONMENT}
        env[numerics.MODE_VARIABLE] = mode
        if mode == "portable":
            env.update({**numerics.PORTABLE_ENVIRONMENT, **SETTINGS[name]})
        cmd = [sys.executable, "-m", "benchmarks.run.numerics_probe", "--child", "--steps", str(steps)]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                                  cwd=Path(__file__).resolve().parents[2])
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as err:
            results[name] = {"error": f"{type(err).__name__}: {getattr(err, 'stderr', '') or err}"[-2000:]}
        announce(f"{name}: {'error' if 'error' in results[name] else 'done'}")
    return {"machine": machine(), "steps": steps, "settings": results}


def machine() -> dict[str, Any]:
    import platform

    return {"cpu": numerics.cpu_model(), "vendor": numerics.cpu_vendor(), "isa": numerics.cpu_flags(),
            "machine": platform.machine(), "python": platform.python_version(), "torch": torch_version()}


def torch_version() -> str:
    import torch

    return torch.__version__


MACHINE_KEYS = ("cpu", "vendor", "isa", "torch")


def read_probe(path: Path) -> dict[str, Any]:
    """A file written by ``numerics-probe --out``; anything else is an error that names the file."""
    try:
        probe_file = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not a numerics-probe file (not JSON: {err})") from None
    top = probe_file if isinstance(probe_file, dict) else {}
    expected = [key for key in ("machine", "settings") if key not in top]
    expected += [f"machine.{key}" for key in MACHINE_KEYS if not expected and key not in top["machine"]]
    if expected:
        raise ConfigError(f"{path}: not a file of `geomreg-bench numerics-probe --out` (no {expected[0]!r})")
    return probe_file


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], bool]:
    """Lines saying, per setting both probed, whether every digest agrees (else the first op that
    differs and how many training digests differ); and whether the portable setting agrees."""
    lines = [f"A: {describe(a['machine'])}", f"B: {describe(b['machine'])}"]
    portable_same = False
    for name, ra in a["settings"].items():
        rb = b["settings"].get(name)
        if rb is None or "error" in ra or "error" in rb:
            lines.append(f"{name}: not comparable (probed on one side only, or failed)")
            continue
        ops = [op for op in ra["ops"] if ra["ops"][op] != rb["ops"].get(op)]
        runs = [run for run in ra["train"] if ra["train"][run] != rb["train"].get(run)]
        same = (not ops and not runs and ra["ops"].keys() == rb["ops"].keys()
                and ra["train"].keys() == rb["train"].keys())
        if name == "portable":
            portable_same = same
        verdict = "every digest agrees" if same else (
            f"DIFFERENT: {len(ops)} ops ({', '.join(ops[:6])}{', ...' if len(ops) > 6 else ''}), "
            f"{len(runs)} of {len(ra['train'])} trainings")
        lines.append(f"{name}: {verdict}; s/step {ra['s_per_step']:.4f} vs {rb['s_per_step']:.4f}")
    return lines, portable_same


def describe(m: dict[str, Any]) -> str:
    return f"{m['cpu']} ({m['vendor']}; {' '.join(m['isa'])}), torch {m['torch']}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.run.numerics_probe", description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(probe_here(args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
