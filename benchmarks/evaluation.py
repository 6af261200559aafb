"""Accuracy and macro-F1 of the fused and the unimodal predictions, and optionally the
representation geometry of the embeddings (``geomreg.geometry``)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from geomreg.geometry import geometry_summary

from .data import TensorSplit
from .models import ModelOutput, MultimodalModel


def macro_f1(pred: Tensor, target: Tensor, num_classes: int) -> float:
    """Mean per-class F1 over the classes that occur in the targets or the predictions."""
    idx = target * num_classes + pred
    confusion = torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp = confusion.diag().double()
    support = confusion.sum(1).double() + confusion.sum(0).double()  # 2TP + FN + FP
    present = support > 0
    return (2 * tp[present] / support[present]).mean().item() if present.any() else 0.0


def model_unimodal_logits(out: ModelOutput) -> dict[str, Tensor]:
    return out.unimodal_logits


@torch.no_grad()
def evaluate(model: MultimodalModel, split: TensorSplit, batch_size: int, device: torch.device,
             num_classes: int, unimodal_logits: Callable[[ModelOutput], dict[str, Tensor]] = model_unimodal_logits,
             geometry: bool = False) -> dict[str, Any]:
    """``acc``/``f1``/``loss`` of the fused logits, ``acc_<m>``/``f1_<m>`` per modality
    (from ``unimodal_logits(out)``, the method's evaluation protocol). With ``geometry=True`` also
    ``geometry``: :func:`geomreg.geometry.geometry_summary` of the whole split's embeddings (the
    encoders' outputs, ``out.embeddings``) and labels."""
    was_training = model.training
    model.eval()
    fused, unimodal, labels = [], {m: [] for m in model.modalities}, []
    embeddings = {m: [] for m in model.modalities}
    for batch in split.batches(batch_size):
        batch = batch.to(device)
        out = model(batch.inputs)
        fused.append(out.logits.float())
        per_modality = unimodal_logits(out)
        for m in model.modalities:
            unimodal[m].append(per_modality[m].argmax(1))
            if geometry:  # fp32 on the CPU, where the float64 summary runs (bf16 autocast outputs are upcast)
                embeddings[m].append(out.embeddings[m].float().cpu())
        labels.append(batch.labels)
    model.train(was_training)
    logits, target = torch.cat(fused), torch.cat(labels)
    pred = logits.argmax(1)
    metrics = {
        "acc": (pred == target).double().mean().item(),
        "f1": macro_f1(pred, target, num_classes),
        "loss": F.cross_entropy(logits, target).item(),
    }
    for m, preds in unimodal.items():
        p = torch.cat(preds)
        metrics[f"acc_{m}"] = (p == target).double().mean().item()
        metrics[f"f1_{m}"] = macro_f1(p, target, num_classes)
    if geometry:
        metrics["geometry"] = geometry_summary({m: torch.cat(z) for m, z in embeddings.items()}, target.cpu())
    return metrics
