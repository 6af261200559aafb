"""D&R: diagnosing and re-learning (Wei et al., ECCV 2024), as its official code executes it.

Training optimises the fused cross-entropy only. After the evaluation of every diagnosis epoch
(official: 0-based epochs 20, 40, 60 of 90, at most 3 times; here scaled to the run's epochs):

1. **Diagnose.** Pooled per-modality embeddings of the whole training split and of the validation split
   (carved from train; never test) are computed in eval mode. Each of the four feature sets is
   min-max scaled to [−1, 1] and clustered by k-means with k = number of classes; purity is the
   accuracy of labelling each cluster with its majority class. Gap ``g_m = |P_train − P_val|``,
   strength ``α_m = tanh(λ·g_m)``.
2. **Re-learn.** Every parameter of encoder m is blended toward the run's own initial weights,
   ``θ ← α_m·θ_init + (1 − α_m)·θ``. BatchNorm running statistics, the fusion head and the optimizer
   state (momentum buffers) are left as they are, as in the official code; training simply goes on.

The diagnosis runs at the start of the next epoch, i.e. after the diagnosis epoch's evaluation, which is
where the official loop runs it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.core.strict import ConfigError

from .base import Method
from .registry import register

KMEANS_SEED = 0  # official KMeans(random_state=0)


@dataclass(frozen=True)
class DnRParams:
    # λ in α = tanh(λ·gap): official script/ours.sh --move_lambda 3.
    relearn_lambda: float = 3.0
    # Diagnosis every max(1, round(fraction · epochs)) epochs: ours.sh --reinit_epoch 20 with --epochs 90.
    diagnosis_interval_fraction: float = 20 / 90
    # At most this many diagnoses: ours.sh --reinit_num 3.
    max_diagnoses: int = 3
    # k-means restarts. The official call leaves scikit-learn's default, which was 10 until version 1.4
    # and is 1 since; 10 makes the purity less dependent on one initialisation.
    kmeans_n_init: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.diagnosis_interval_fraction <= 1 or self.max_diagnoses < 0 or self.kmeans_n_init < 1:
            raise ConfigError("dnr: need 0 < diagnosis_interval_fraction <= 1, max_diagnoses >= 0, "
                             "kmeans_n_init >= 1")


# --- pure functions --------------------------------------------------------------------------------
def diagnosis_epochs(epochs: int, fraction: float, max_diagnoses: int) -> list[int]:
    """0-based epochs after whose evaluation the diagnosis runs: multiples of the interval, > 0,
    before the last epoch (a diagnosis after it would change nothing), at most ``max_diagnoses``."""
    interval = max(1, round(fraction * epochs))
    return [k * interval for k in range(1, max_diagnoses + 1) if k * interval < epochs - 1]


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Fraction of samples whose label is the majority label of their cluster."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    majority = sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters))
    return float(majority) / len(labels)


def kmeans_purity(features: np.ndarray, labels: np.ndarray, n_clusters: int, n_init: int) -> float:
    """Official ``reinit_score`` for one feature set: MinMax-scale to [−1, 1], k-means, purity."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import MinMaxScaler

    scaled = MinMaxScaler(feature_range=(-1, 1)).fit_transform(features)
    clusters = KMeans(n_clusters=n_clusters, random_state=KMEANS_SEED, n_init=n_init).fit_predict(scaled)
    return purity(labels, clusters)


def relearn_strength(purity_train: float, purity_val: float, lam: float) -> float:
    """``α = tanh(λ·|P_train − P_val|)``."""
    return math.tanh(lam * abs(purity_train - purity_val))


@torch.no_grad()
def blend_toward(params: list[Tensor], initial: list[Tensor], alpha: float) -> None:
    """``θ ← α·θ_init + (1 − α)·θ`` in place (the optimizer keeps the same parameter objects)."""
    for p, p0 in zip(params, initial, strict=True):
        p.copy_(alpha * p0 + (1 - alpha) * p)


# --- the method ------------------------------------------------------------------------------------
@register
class DnR(Method):
    name = "dnr"
    title = "D&R"
    Params = DnRParams
    unimodal_heads = "split"
    dagr_rule = ("added to the total loss before backward (D&R's only per-step loss is the fused cross-entropy); "
                 "the diagnosis clusters the embeddings DAGR shapes, and the re-learning blends the encoder "
                 "weights between epochs")

    def __init__(self, params, model, setup):
        super().__init__(params, model, setup)
        self.schedule = diagnosis_epochs(setup.epochs, params.diagnosis_interval_fraction, params.max_diagnoses)
        # θ_init: the run's own starting weights, as the official code saves them right after construction.
        self.initial = {m: [p.detach().clone() for p in model.encoders[m].parameters()] for m in model.modalities}

    def losses(self, out, batch):
        return {"ce_fused": F.cross_entropy(out.logits, batch.labels)}

    def on_epoch_start(self, epoch):
        super().on_epoch_start(epoch)
        if epoch - 1 not in self.schedule:
            return {}
        logs = self.diagnose()
        for m in self.model.modalities:
            blend_toward(list(self.model.encoders[m].parameters()), self.initial[m], logs[f"dnr/alpha_{m}"])
        return logs

    def diagnose(self) -> dict[str, float]:
        """Purities of train and val embeddings per modality, their gap and the re-learning strength."""
        data, k = self.setup.data, self.setup.data.num_classes
        train, val = self.embeddings(data.train.for_evaluation()), self.embeddings(data.val)
        logs = {}
        for m in self.model.modalities:
            p_train = kmeans_purity(train[m], train["labels"], k, self.params.kmeans_n_init)
            p_val = kmeans_purity(val[m], val["labels"], k, self.params.kmeans_n_init)
            logs[f"dnr/purity_train_{m}"], logs[f"dnr/purity_val_{m}"] = p_train, p_val
            logs[f"dnr/alpha_{m}"] = relearn_strength(p_train, p_val, self.params.relearn_lambda)
        return logs

    @torch.no_grad()
    def embeddings(self, split) -> dict[str, np.ndarray]:
        """Pooled embeddings per modality (and ``labels``) of a whole split, model in eval mode."""
        was_training = self.model.training
        self.model.eval()
        parts: dict[str, list[Tensor]] = {m: [] for m in (*self.model.modalities, "labels")}
        try:
            for batch in split.batches(self.setup.batch_size):
                batch = batch.to(self.setup.device)
                for m, z in self.model.encode(batch.inputs).items():
                    parts[m].append(z.float().cpu())
                parts["labels"].append(batch.labels.cpu())
        finally:
            self.model.train(was_training)
        return {m: torch.cat(v).numpy() for m, v in parts.items()}

    # --- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"initial": {m: [t.cpu() for t in ts] for m, ts in self.initial.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"initial"}:
            raise ValueError(f"method 'dnr': expected state keys ['initial'], got {sorted(state)}")
        shapes = {m: [t.shape for t in ts] for m, ts in self.initial.items()}
        if {m: [t.shape for t in ts] for m, ts in state["initial"].items()} != shapes:
            raise ValueError("method 'dnr': the saved initial weights do not match the model's encoders")
        self.initial = {m: [t.to(self.setup.device) for t in ts] for m, ts in state["initial"].items()}
