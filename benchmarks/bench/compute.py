"""Step and epoch cost through the suite's own code path: real ``Trainer`` objects on random tensors.

Every variant is a ``benchmarks.train.trainer.Trainer`` built from a resolved run config on the ``debug``
dataset with CREMA-D's input shapes (or reduced ones, said so in the output), ResNet-18 encoders and
concat fusion; a step is ``trainer.train_step(batch)``, an epoch is ``method.on_epoch_start(e)`` +
``trainer.train_epoch(e)`` + ``method.on_epoch_end(e)`` (evaluation is left out: it is the same for all).
"""
from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from baselines import Method
from benchmarks.core import allocator

from .timing import interleave, paired

METHODS = ("joint", "ogm_ge", "gblending", "pmr", "mmpareto", "dgl")
# DAGR's settings by the suffix of a variant's name, ``<method>+<suffix>`` (e.g. ``dgl+dagr-last-layer``).
DAGR_VARIANTS = {"dagr": {"enabled": True, "weighting": "pareto"},
                 "dagr-fixed": {"enabled": True, "weighting": "fixed"},
                 "dagr-last-layer": {"enabled": True, "weighting": "pareto", "alpha": "last_layer"}}
FLOOR = "mmpareto-floor"
DAGR_FLOOR = "joint+dagr-floor"  # DAGR's fixed form with its backward split in timed head and encoder parts
NUM_CLASSES = 6  # CREMA-D


@dataclass(frozen=True)
class Shapes:
    """Input shapes per sample: audio 1×H×W spectrogram, visual ``frames``×3×S×S."""

    audio_h: int
    audio_w: int
    visual: int
    frames: int = 1
    label: str = ""

    def describe(self) -> str:
        return (f"audio 1×{self.audio_h}×{self.audio_w}, visual {self.frames}×3×{self.visual}×{self.visual}"
                + (f" ({self.label})" if self.label else ""))


CREMAD = Shapes(257, 188, 224, 1, "CREMA-D, full")


def n_train_for(batches: int, batch_size: int, val_fraction: float = 0.1) -> int:
    """A debug ``n_train`` whose train part (after the stratified validation carve-out) holds at least
    ``batches`` full batches (the trainer drops the last partial one)."""
    n = batches * batch_size
    while True:
        per_class = n // NUM_CLASSES
        held = NUM_CLASSES * min(max(1, round(val_fraction * per_class)), per_class - 1)
        if n - held >= batches * batch_size:
            return n
        n += NUM_CLASSES


def run_config(method: str, shapes: Shapes, batch_size: int, n_train: int, dagr: dict[str, Any] | None = None,
               device: str = "cpu", precision: str | None = None, channels_last: bool | None = None,
               epochs: int = 10, encoder: str = "resnet18"):
    """A resolved run config. ``epochs`` 10 puts every hooked method in its active window at the first
    epochs and makes G-Blending's super-epoch 1 epoch, so it re-estimates at every epoch (the same
    amortized share as the online default: n estimation epochs per n-epoch super-epoch)."""
    from benchmarks.grid.config import resolve_run

    raw: dict[str, Any] = {
        "benchmark": "bench",
        "seed": 0,
        "device": device,
        "data": {"name": "debug", "batch_size": batch_size, "eval_batch_size": batch_size,
                 "params": {"num_classes": NUM_CLASSES, "n_train": n_train, "n_test": NUM_CLASSES,
                            "frames": shapes.frames, "audio_height": shapes.audio_h,
                            "audio_width": shapes.audio_w, "visual_size": shapes.visual}},
        "model": {"encoder": encoder, "fusion": "concat"},
        "optim": {"epochs": epochs, "scheduler": "none", "lr": 0.01},
        "method": {"name": method},
        "dagr": dagr or {"enabled": False},
    }
    if precision is not None:
        raw["precision"] = precision
    if channels_last is not None:
        raw["channels_last"] = channels_last
    return resolve_run(raw)


def build_trainer(cfg, root: Path | None = None):
    """A trainer of ``cfg`` whose run directory is under ``root``, else in a folder of its own under
    :func:`_scratch_folder`."""
    from benchmarks.core.records import RunDir
    from benchmarks.train.trainer import Trainer

    root = Path(root or tempfile.mkdtemp(prefix="trainer-", dir=_scratch_folder().name))
    return Trainer(cfg, RunDir(root / cfg.label))


@functools.cache
def _scratch_folder() -> tempfile.TemporaryDirectory:
    """One temporary folder for this process's bench trainers: the cache keeps it alive, and its
    finalizer removes it when the process exits."""
    return tempfile.TemporaryDirectory(prefix="bench-")


def floor_backward(model):
    """MMPareto's intrinsic floor: one ``autograd.grad`` per loss group it needs (the fused CE, and the
    unimodal CEs (+ DAGR), exactly the two calls of ``mmpareto_backward``), then the plain sum into
    ``p.grad``; no cosine test, no min-norm weights, no norm restoration."""

    def backward(losses, regularizer):
        params = [p for p in model.parameters() if p.requires_grad]
        l_mm = losses["ce_fused"]
        l_uni = sum(v for k, v in losses.items() if k != "ce_fused")
        if regularizer is not None:
            l_uni = l_uni + regularizer
        g_mm = torch.autograd.grad(l_mm, params, retain_graph=True, allow_unused=True)
        g_u = torch.autograd.grad(l_uni, params, allow_unused=True)
        for p, a, b in zip(params, g_mm, g_u):
            if a is None and b is None:
                continue
            p.grad = a if b is None else (b if a is None else a + b)

    return backward


class SplitBackward:
    """The floor of DAGR's Pareto step, timed inside joint training with DAGR's fixed form: the same
    forward (the model, the losses and DAGR's terms, ``F``) and a backward in two parts, the head's (the
    objective back to the embeddings and the head's parameters, DAGR's terms included, ``B_head``) and
    the encoders' (the embeddings' cotangent back through every encoder, ``B_enc``, what each of the
    Pareto rule's pull-backs costs). The exact rule needs ``F + 3·B_enc + B_head`` per step: this
    variant's step time plus ``2·B_enc``."""

    def __init__(self, model, sync=None) -> None:
        self.model, self.sync = model, sync or (lambda: None)
        # collected once, as the trainer collects DAGR's encoder parameters
        self.heads = [p for p in model.head_parameters() if p.requires_grad]
        self.encoders = [p for m in model.modalities for p in model.encoder_parameters(m) if p.requires_grad]
        self.encoder_s: list[float] = []  # B_enc of each step, wall seconds
        self.encoder_cpu_s: list[float] = []  # and this process's CPU seconds
        self.embeddings = None
        encode = model.encode

        def keep(*args, **kwargs):
            self.embeddings = encode(*args, **kwargs)
            return self.embeddings

        model.encode = keep  # the instance's encode: the forward pass hands the embeddings over

    def __call__(self, losses, regularizer) -> None:
        zs = list(self.embeddings.values())
        heads, encoders = self.heads, self.encoders
        objective = sum(losses.values()) + (regularizer if regularizer is not None else 0.0)
        upper = torch.autograd.grad(objective, zs + heads, allow_unused=True)
        self.sync()
        cpu, start = time.process_time(), time.perf_counter()
        lower = torch.autograd.grad(zs, encoders, grad_outputs=list(upper[:len(zs)]), allow_unused=True)
        self.sync()
        self.encoder_s.append(time.perf_counter() - start)
        self.encoder_cpu_s.append(time.process_time() - cpu)
        for p, g in zip(heads + encoders, (*upper[len(zs):], *lower)):
            if g is not None:
                p.grad = g


def step_trainer(name: str, shapes: Shapes, batch_size: int, device: str = "cpu", **cfg_kw):
    """A trainer ready for timed steps of variant ``name`` (a method, ``<method>+dagr*`` or a floor)."""
    variant = "mmpareto" if name == FLOOR else "joint+dagr-fixed" if name == DAGR_FLOOR else name
    method, _, arm = variant.partition("+")
    cfg = run_config(method, shapes, batch_size, n_train_for(1, batch_size), DAGR_VARIANTS.get(arm), device,
                     **cfg_kw)
    return prepare_step(build_trainer(cfg), name)


def prepare_step(trainer, name: str):
    """The trainer of variant ``name`` set up for timed steps (the floors' backward, the epoch hooks)."""
    method = trainer.cfg.method.name
    if name == FLOOR:
        trainer.method.backward = floor_backward(trainer.model)
    if name == DAGR_FLOOR:
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else None
        trainer.method.backward = SplitBackward(trainer.model, sync)
    if method == "gblending":
        # Step cost only: the base hook (no weight estimation; weights stay uniform, same work per step).
        Method.on_epoch_start(trainer.method, 0)
    else:
        trainer.method.on_epoch_start(0)  # PMR: prototypes, so the step computes its PCE terms
    trainer.model.train()
    return trainer


def first_batch(trainer):
    batch = next(iter(trainer.data.train.batches(trainer.cfg.data.batch_size)))
    return batch.to(trainer.device)


def warm_start(warmup: int) -> dict[str, Any]:
    """How the timed steps start, ``interleave``'s ``warmup`` rounds and ``settle``. A step pays for the
    memory its predecessor handed back to the system; with freed memory kept (``benchmarks.core.allocator``,
    the suite's default) nothing is handed back (a joint step after DAGR's exact step faulted in no page),
    so ``warmup`` rounds, at least one for the heap to reach the heaviest variant's peak, are enough. With
    glibc's default every timed step follows an untimed one of its own kind."""
    if allocator.current_mode() == "keep":
        return {"warmup": max(warmup, 1), "settle": False}
    return {"warmup": warmup, "settle": True}


STEP_REFERENCE = "joint"
STEP_FLOORS = {"mmpareto": FLOOR}


def beside(reference: str, variant: str) -> str:
    """The times' key of ``reference``'s steps timed right next to ``variant``'s."""
    return f"{reference} (beside {variant})"


def step_pairs(variants: list[str]) -> list[tuple[str, str]]:
    """Each variant with the steps its ratio is taken against, to be timed next to it: its floor
    (``STEP_FLOORS``), else joint training's own steps, once per variant (``beside``; the first
    variant's under joint's name)."""
    pairs, joint_taken = [], False
    for name in variants:
        if name in STEP_FLOORS:
            pairs.append((name, STEP_FLOORS[name]))
        else:
            pairs.append((name, beside(STEP_REFERENCE, name) if joint_taken else STEP_REFERENCE))
            joint_taken = True
    return pairs


def time_steps(pairs: list[tuple[str, str]], shapes: Shapes, batch_size: int, reps: int, warmup: int = 1,
               device: str = "cpu", steps_per_call: int = 1, budget_s: float | None = None,
               settle: bool = True, processing: dict[str, list[float]] | None = None,
               **cfg_kw) -> dict[str, list[float]]:
    """Seconds per training step of each variant and of the steps each is compared with (``step_pairs``),
    every pair back to back (``timing.paired``); one entry per repetition. One trainer per variant: the
    reference's keys all time the same trainer. Given ``processing``, it receives the seconds of each
    method variant's ``process_gradients`` in every step it ran (warm-up included), timed inside the step."""
    trainers, calls = {}, {}
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    variant_of = {beside(STEP_REFERENCE, variant): STEP_REFERENCE for variant, _ in pairs}
    for key in (key for pair in pairs for key in pair):
        name = variant_of.get(key, key)
        if name not in trainers:
            trainer = step_trainer(name, shapes, batch_size, device, **cfg_kw)
            trainers[name] = (trainer, first_batch(trainer))
            if processing is not None and name in METHODS and name != STEP_REFERENCE:
                time_hook(trainer.method, "process_gradients", processing.setdefault(name, []), sync)

        def call(trainer=trainers[name][0], batch=trainers[name][1]):
            for _ in range(steps_per_call):
                trainer.train_step(batch)

        calls[key] = call
    times = interleave(calls, reps, warmup, sync=sync, budget_s=budget_s, settle=settle, order=paired(pairs))
    return {k: [t / steps_per_call for t in v] for k, v in times.items()}


def time_hook(method: Method, hook: str, spent: list[float], sync=None) -> None:
    """Append the seconds of every later call of ``method.<hook>`` to ``spent`` (on a GPU, synced before
    and after, so the hook's own kernels are counted)."""
    inner, sync = getattr(method, hook), sync or (lambda: None)

    def timed(*args, **kwargs):
        sync()
        start = time.perf_counter()
        out = inner(*args, **kwargs)
        sync()
        spent.append(time.perf_counter() - start)
        return out

    setattr(method, hook, timed)


def epoch_trainer(method: str, shapes: Shapes, batch_size: int, batches: int, device: str = "cpu", **cfg_kw):
    cfg = run_config(method, shapes, batch_size, n_train_for(batches, batch_size), None, device, **cfg_kw)
    return build_trainer(cfg)


def time_epochs(methods: list[str], shapes: Shapes, batch_size: int, batches: int, reps: int,
                device: str = "cpu", budget_s: float | None = None,
                **cfg_kw) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per training epoch (method hooks included) of each method, interleaved, and the seconds
    of each epoch spent in the hooks (``on_epoch_start`` + ``on_epoch_end``).

    Warm-up: one training step per trainer (kernel selection for the shapes), not a whole epoch."""
    calls, hooks = {}, {m: [] for m in methods}
    for method in methods:
        trainer = epoch_trainer(method, shapes, batch_size, batches, device, **cfg_kw)
        trainer.train_step(first_batch(trainer))
        counter = iter(range(10**9))
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def call(trainer=trainer, counter=counter, spent=hooks[method], sync=sync):
            epoch = next(counter) % 5  # inside every method's window (OGM-GE ends at epoch 5 of 10)
            t0 = time.perf_counter()
            trainer.method.on_epoch_start(epoch)
            sync()
            t1 = time.perf_counter()
            trainer.train_epoch(epoch)
            t2 = time.perf_counter()
            trainer.method.on_epoch_end(epoch)
            sync()
            spent.append(t1 - t0 + time.perf_counter() - t2)

        calls[method] = call
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = interleave(calls, reps, warmup=0, sync=sync, budget_s=budget_s)
    return times, hooks


def hooks_factor(epoch_s: list[float], hook_s: list[float], joint_epoch_s: list[float],
                 joint_hook_s: list[float]) -> float:
    """What turns a full-shape step ratio into an estimated epoch ratio: the method's epoch/steps factor
    ``epoch / (epoch - hooks)`` over joint's, both from the reduced-shape epochs (the hooks are
    forward/backward work, so their share of an epoch hardly depends on the input size)."""
    def factor(e, h):
        return sum(e) / max(sum(e) - sum(h), 1e-12)

    return factor(epoch_s, hook_s) / factor(joint_epoch_s, joint_hook_s)
