"""The one training loop: epochs, optimizer and schedule, evaluation, logging, checkpoints.

Methods plug in through the hooks of ``baselines.base.Method``; DAGR is a flag of the run.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from baselines import Method, MethodSetup, get_method
from baselines.plugins import method_origin
from geomreg import DAGR, GeometryGradients, Regularizer
from geomreg.controls import control_loss
from geomreg.lastlayer import recording

from ..data import Batch, DatasetSplits, get_dataset, load_data
from ..models import MultimodalModel, build_model
from ..grid.config import RunConfig, dump_yaml
from ..train.distributed import current as current_ranks
from ..core.numerics import pin_threads
from ..core.records import (RunDir, atomic_torch_save, atomic_write_json, atomic_write_text, environment,
                      git_commit, peak_memory_mb)
from ..core.strict import from_dict
from .compute import autocast, choose_device, prepare_model, resolve_precision, use_channels_last
from .dagr_step import AlphaAgreement, plain_gradient
from .evaluation import PredictionLog, evaluate
from ..core.selection import SELECTION_RULES, select_epoch


class NonFiniteLossError(RuntimeError):
    """The objective became NaN or Inf; the run stops and is recorded as failed."""

    def __init__(self, method: str, epoch: int, step: int, terms: dict[str, float]) -> None:
        super().__init__(f"non-finite loss in method {method!r} at epoch {epoch}, step {step}: {terms}")
        self.method, self.epoch, self.step, self.terms = method, epoch, step, terms


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def build_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def build_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer):
    o = cfg.optim
    if o.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    if o.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=o.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def build_regularizer(cfg: RunConfig) -> Regularizer | None:
    """DAGR, or an objective control's loss (``geomreg.controls``; None for unit-sphere, which has none)."""
    if cfg.control.kind != "none":
        return control_loss(cfg.control.kind, cfg.control.strength, cfg.control.params)
    d = cfg.dagr
    if not d.enabled:
        return None
    return DAGR(t=d.t, tau=d.tau, anchor_form=d.anchor_form, weighting=d.weighting, beta=d.beta,
                lambda_disperse=d.lambda_disperse, lambda_anchor=d.lambda_anchor, terms=d.terms,
                dispersion_form=d.dispersion_form, alpha=d.alpha, record_exact_alpha=d.record_exact_alpha)


@dataclass
class EpochTotals:
    """Per-epoch sums kept on the device, read once at the end of the epoch (no per-step sync)."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {k: (v / max(self.steps, 1)).item() for k, v in self.sums.items()}


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: RunDir, progress: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.progress = progress
        pin_threads()  # the portable numerics train every run on one thread (benchmarks.core.numerics)
        self.ranks = current_ranks()  # one process unless started by torchrun (benchmarks.train.distributed)
        self.device = self.ranks.device(choose_device(cfg.device))
        seed_everything(cfg.seed, cfg.deterministic)
        method_cls = get_method(cfg.method.name)
        params = from_dict(method_cls.Params, cfg.method.params, "method.params")
        available = tuple(get_dataset(cfg.data.name).channels)
        self.data: DatasetSplits = load_data(cfg.data, method_cls.modalities(params, available), self.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.channels_last = use_channels_last(cfg.channels_last, self.device)
        model = build_model(cfg.model, self.data.channels, self.data.num_classes,
                            unit_sphere=cfg.control.kind == "unit_sphere")
        self.model: MultimodalModel = prepare_model(model, self.device, self.channels_last)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        setup = MethodSetup(self.data, cfg.optim.epochs, cfg.data.batch_size, self.device, self.generator, cfg.optim.lr)
        self.method: Method = method_cls(params, self.model, setup)
        self.regularizer = build_regularizer(cfg)
        self.alpha_agreement = AlphaAgreement() if cfg.dagr.enabled and cfg.dagr.record_exact_alpha else None
        self.last_layers = ({m: self.model.last_layer(m) for m in self.model.modalities}
                            if cfg.dagr.enabled and cfg.dagr.alpha == "last_layer" else {})
        # collected once: walking an encoder's module tree each step costs tens of microseconds, a
        # measurable share of DAGR's step on the small CNN (its parameters stay the same objects)
        self.encoder_params = {m: list(self.model.encoder_parameters(m)) for m in self.model.modalities}
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.global_step = 0
        self.test_predictions = PredictionLog()

    # --- the loop ----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        start_time = time.perf_counter()
        if self.ranks.is_main:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir.config, dump_yaml(self.cfg))
        rows, start_epoch, elapsed_before = self._resume()
        epochs = range(start_epoch, self.cfg.optim.epochs)
        bar = tqdm(epochs, desc=self.cfg.label, leave=False, disable=not self.progress, initial=start_epoch,
                   total=self.cfg.optim.epochs)
        for epoch in bar:
            t0 = time.perf_counter()
            row = self.train_one_epoch(epoch)
            if self.ranks.is_main:  # rank 0 evaluates and writes the records; the other ranks wait
                row["val"] = self.evaluate_split(self.data.val, "val" in self.cfg.eval.geometry)
                row["test"] = self.evaluate_split(self.data.test, "test" in self.cfg.eval.geometry,
                                                  on_predictions=partial(self.test_predictions.add, epoch))
                row["time_s"] = time.perf_counter() - t0
                rows.append(row)
                self.run_dir.write_metrics(rows)
                self.test_predictions.write(self.run_dir.test_predictions)  # before last.pt: resume finds it
                self._checkpoint(rows, epoch, elapsed_before + time.perf_counter() - start_time)
                bar.set_postfix(val=f"{row['val']['acc']:.3f}")
            self.ranks.barrier()
        if not self.ranks.is_main:
            return {}
        wall = elapsed_before + time.perf_counter() - start_time
        final = self._final_record(rows, wall)
        atomic_write_json(self.run_dir.final, final)
        self.run_dir.last.unlink(missing_ok=True)  # resume state is no longer needed
        atomic_write_text(self.run_dir.done, "")
        return final

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch without its evaluation: the method's epoch hooks around the training passes, then the
        schedule's step; the epoch's record so far."""
        row: dict[str, Any] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        row["method_start"] = self.method.on_epoch_start(epoch)
        row["train"] = self.train_epoch(epoch)
        self.scheduler.step()
        row["method_end"] = self.method.on_epoch_end(epoch)
        return row

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        totals = EpochTotals()
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        batches = self.data.train.batches(self.cfg.data.batch_size, shuffle=True, generator=self.generator,
                                          drop_last=len(self.data.train) > self.cfg.data.batch_size)
        step = torch.zeros((), dtype=torch.long, device=self.device)  # counted on the device: no host copy
        for batch in batches:
            logs = self.train_step(self.ranks.shard(batch).to(self.device))
            bad = ~torch.isfinite(logs["objective"])
            first_bad = torch.where(bad & (first_bad < 0), step, first_bad)
            step += 1
            totals.add(logs)
            self.global_step += 1
        agreement = self.alpha_agreement.summary() if self.alpha_agreement is not None else {}
        means = self.ranks.mean({**totals.means(), **agreement})  # one host sync per epoch
        first_bad = self.ranks.earliest_step(first_bad)
        self.ranks.sync_buffers(self.model)
        if first_bad.item() >= 0:
            raise NonFiniteLossError(self.cfg.method.name, epoch, int(first_bad.item()), means)
        return means

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        logs = self.compute_gradients(batch)
        if self.cfg.optim.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip_norm)
        self.optimizer.step()
        return logs

    def compute_gradients(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Forward, the method's losses and gradient processing, DAGR or a control: every ``.grad`` of one
        step. A control's loss joins the objective like DAGR's fixed form (``Method.backward``)."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device):
            with recording(*self.last_layers.values()):  # the last-layer α may read its convolution's input
                out = self.model(batch.inputs)
            losses = self.method.losses(out, batch)
        embeddings = {m: z.float() for m, z in out.embeddings.items()}  # regularizer in fp32 (bf16 rounds distances)
        reg = self.regularizer(embeddings) if self.regularizer is not None else None
        geometry = self._geometry_gradients(reg, embeddings)  # before the method's backward frees the graph
        fixed_loss = reg["loss"] if reg is not None and geometry is None else None
        objective = sum(losses.values())
        if fixed_loss is not None:  # an addition of 0.0 would be one more tensor operation per step
            objective = objective + fixed_loss
        self.method.backward(losses, fixed_loss if geometry is None else geometry.joined_loss)
        logs = dict(self.method.process_gradients(out, batch))
        self.ranks.average_gradients(self.model.parameters(), len(batch))  # after the method's modulation
        logs.update(self.method.clip_gradients())  # the averaged gradient's norm (DGL)
        if geometry is not None:  # Algorithm 1: g_task (as the method made it) + g_geom, unmodulated
            self.ranks.average_tensors(geometry.tensors(), len(batch))
            geometry.apply()
            logs.update({f"dagr/alpha/{m}": a for m, a in geometry.alphas.items()})
            logs.update({f"dagr/alpha_exact/{m}": a for m, a in geometry.exact_alphas.items()})
            if self.alpha_agreement is not None:
                self.alpha_agreement.add(geometry.alphas, geometry.exact_alphas)
        logs.update(losses)
        if reg is not None:
            logs.update({f"{self.regularizer.log_prefix}/{k}": v for k, v in reg.items()})
        logs["objective"] = objective.detach()
        return logs

    def _geometry_gradients(self, reg: dict[str, torch.Tensor] | None,
                            embeddings: dict[str, torch.Tensor]) -> GeometryGradients | None:
        """DAGR's Pareto-weighted gradient per encoder, or None when the fixed form joins the loss. With the
        last-layer α it joins the backward of a method whose gradient is plain (``joined_loss``)."""
        if reg is None or not self.regularizer.adds_own_gradient:
            return None
        encoders = {m: self.encoder_params[m] for m in embeddings}
        last_layers = {m: self.last_layers[m] for m in embeddings} if self.last_layers else None
        return self.regularizer.geometry_gradients(reg, embeddings, encoders, alpha_params=last_layers,
                                                   fold=plain_gradient(self.method))

    def evaluate_split(self, split, geometry: bool = False, on_predictions=None, perturbation=None) -> dict[str, Any]:
        with autocast(self.precision, self.device):
            return evaluate(self.model, split, self.cfg.data.eval_batch_size, self.device, self.data.num_classes,
                            self.method.eval_unimodal_logits, geometry=geometry, on_predictions=on_predictions,
                            perturbation=perturbation)

    # --- checkpoints and records -------------------------------------------------------------------
    def _checkpoint(self, rows: list[dict[str, Any]], epoch: int, elapsed: float) -> None:
        selected = select_epoch(rows, self.cfg.eval.selection)
        if selected["epoch"] == epoch:
            atomic_torch_save(self.model.state_dict(), self.run_dir.best)
        atomic_torch_save({
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "method": self.method.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "global_step": self.global_step,
            "elapsed_s": elapsed,
        }, self.run_dir.last)

    def _resume(self) -> tuple[list[dict[str, Any]], int, float]:
        """Continue from ``last.pt`` when an earlier attempt of this run was interrupted."""
        if not self.run_dir.last.exists():
            return [], 0, 0.0
        state = torch.load(self.run_dir.last, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.global_step = state["global_step"]
        rows = [r for r in self.run_dir.read_metrics() if r["epoch"] <= state["epoch"]]
        self.test_predictions = PredictionLog.read(self.run_dir.test_predictions, through_epoch=state["epoch"])
        return rows, state["epoch"] + 1, state["elapsed_s"]

    def _final_record(self, rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
        return {
            "label": self.cfg.label,
            "run_id": self.cfg.run_id(),
            "method": self.cfg.method.name,
            "method_origin": method_origin(self.cfg.method.name),  # a plugin's file and digest
            "dagr": self.cfg.dagr.enabled,
            "seed": self.cfg.seed,
            "modalities": list(self.model.modalities),
            "epochs": len(rows),
            "selection": self.cfg.eval.selection,
            "selected": {rule: select_epoch(rows, rule) for rule in SELECTION_RULES},
            "git": git_commit(),
            "environment": environment(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "wall_time_s": wall,
            "peak_memory_mb": peak_memory_mb(self.device),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "data": self.data.fingerprint,  # clips per split and their digest; None for the shipped datasets
        }
