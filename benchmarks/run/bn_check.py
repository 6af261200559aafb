"""``geomreg-bench bn-check``: does a run's validation accuracy at an epoch depend on its BatchNorm statistics?

A method that trains through passes in eval mode (AGM's zero-input passes) moves weights that the
train-mode forward does not see, such as the scale of a convolution in front of a BatchNorm, so the
running statistics that evaluation uses can fall out of step with the weights. This re-trains a run
(bit for bit, from its seed) to the end of the given epoch, validates it as the run did, then
re-estimates every BatchNorm's statistics on the training split (a cumulative average over one pass in
train mode, no gradient step) and validates again. If the second accuracy is far above the first, the
collapse was the statistics', not the weights'.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch

from ..grid.config import RunConfig
from ..grid.naming import run_dir_for
from ..train.trainer import Trainer


@dataclass(frozen=True)
class BatchNormCheck:
    epoch: int
    val_acc: float  # as the run validated at this epoch
    val_acc_recalibrated: float  # with the BatchNorm statistics re-estimated on train


@torch.no_grad()
def recalibrate_batch_norm(trainer: Trainer) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them over one pass of the training split."""
    norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    trainer.model.train()
    for batch in trainer.data.train.batches(trainer.cfg.data.batch_size):
        trainer.model(batch.to(trainer.device).inputs)
    for m, momentum in saved:
        m.momentum = momentum
    trainer.model.eval()


def check(cfg: RunConfig, epoch: int) -> BatchNormCheck:
    """Re-train ``cfg`` through ``epoch`` in a scratch folder and validate it both ways."""
    if not 0 <= epoch < cfg.optim.epochs:
        raise ValueError(f"bn-check: epoch must be in 0..{cfg.optim.epochs - 1}, got {epoch}")
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(cfg, run_dir_for(cfg, scratch))
        for e in range(epoch + 1):
            trainer.train_one_epoch(e)
        before = trainer.evaluate_split(trainer.data.val)["acc"]
        recalibrate_batch_norm(trainer)
        after = trainer.evaluate_split(trainer.data.val)["acc"]
    return BatchNormCheck(epoch, before, after)
