"""Accuracy and macro-F1 of the fused and the unimodal predictions, optionally the
representation geometry of the embeddings (``geomreg.geometry``), and the per-sample predicted
classes (:class:`PredictionLog`, kept per epoch so comparisons can be paired by sample).
A :class:`Perturbation` degrades inputs or embeddings on the way (``benchmarks.train.robustness``)."""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from geomreg.geometry import geometry_summary

from ..data import TensorSplit
from ..models import ModelOutput, MultimodalModel
from ..core.records import atomic_write_bytes

Predictions = dict[str, np.ndarray]  # "labels", "fused" and one entry per modality: a class per sample


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


class Perturbation(Protocol):
    """A test-time degradation. ``rows`` are the batch's sample positions in the split, so that what
    a sample gets never depends on the batch size."""

    def inputs(self, inputs: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        """The batch's inputs as the encoders should see them."""

    def embeddings(self, embeddings: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        """The pooled embeddings as the heads should see them."""


def perturbed_forward(model: MultimodalModel, inputs: dict[str, Tensor], perturbation: Perturbation,
                      rows: Tensor) -> ModelOutput:
    """``model(inputs)`` with the perturbation applied to the inputs and to the embeddings."""
    embeddings = perturbation.embeddings(model.encode(perturbation.inputs(inputs, rows)), rows)
    logits, unimodal = model.heads(embeddings)
    return ModelOutput(embeddings, logits, unimodal)


@torch.no_grad()
def evaluate(model: MultimodalModel, split: TensorSplit, batch_size: int, device: torch.device,
             num_classes: int, unimodal_logits: Callable[[ModelOutput], dict[str, Tensor]] = model_unimodal_logits,
             geometry: bool = False, on_predictions: Callable[[Predictions], None] | None = None,
             perturbation: Perturbation | None = None) -> dict[str, Any]:
    """``acc``/``f1``/``loss`` of the fused logits, ``acc_<m>``/``f1_<m>`` per modality
    (from ``unimodal_logits(out)``, the method's evaluation protocol). With ``geometry=True`` also
    ``geometry``: :func:`geomreg.geometry.geometry_summary` of the whole split's embeddings (the
    encoders' outputs, ``out.embeddings``) and labels. ``on_predictions``, when given, receives the
    per-sample classes behind these metrics (split order). ``perturbation``, when given, degrades each
    batch's inputs and embeddings (:class:`Perturbation`)."""
    was_training = model.training
    model.eval()
    fused, unimodal, labels = [], {m: [] for m in model.modalities}, []
    embeddings = {m: [] for m in model.modalities}
    start = 0
    for batch in split.batches(batch_size):
        batch = batch.to(device)
        if perturbation is None:
            out = model(batch.inputs)
        else:
            rows = torch.arange(start, start + len(batch))
            out = perturbed_forward(model, batch.inputs, perturbation, rows)
        start += len(batch)
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
    if on_predictions is not None:
        per_sample = {"labels": target, "fused": pred, **{m: torch.cat(p) for m, p in unimodal.items()}}
        on_predictions({k: v.cpu().numpy().astype(class_dtype(num_classes)) for k, v in per_sample.items()})
    return metrics


def class_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds every class index."""
    return np.min_scalar_type(max(num_classes - 1, 0))


class PredictionLog:
    """The predicted classes of every evaluated epoch: ``epochs`` (E,), ``labels`` (n,), and
    ``fused`` plus one array per modality, each (E, n). Written as one compressed ``.npz`` whose
    bytes depend on the contents only (fixed member timestamps), so a resumed run ends with the same
    file as an uninterrupted one."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.labels: np.ndarray | None = None
        self.heads: dict[str, list[np.ndarray]] = {}

    def add(self, epoch: int, predictions: Predictions) -> None:
        predictions = dict(predictions)
        labels = predictions.pop("labels")
        if self.labels is None:
            self.labels = labels
        elif not np.array_equal(self.labels, labels):
            raise ValueError(f"epoch {epoch}: the evaluated samples differ from the earlier epochs'")
        if self.epochs and (epoch <= self.epochs[-1] or predictions.keys() != self.heads.keys()):
            raise ValueError(f"epoch {epoch} does not extend the logged epochs {self.epochs} with the same heads")
        self.epochs.append(epoch)
        for head, pred in predictions.items():
            self.heads.setdefault(head, []).append(pred)

    def arrays(self) -> dict[str, np.ndarray]:
        if self.labels is None:
            raise ValueError("no predictions logged")
        return {"epochs": np.asarray(self.epochs, dtype=np.int32), "labels": self.labels,
                **{head: np.stack(preds) for head, preds in self.heads.items()}}

    def write(self, path: Path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key, array in self.arrays().items():
                member = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                member.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(member, "w") as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def read(cls, path: Path, through_epoch: int | None = None) -> PredictionLog:
        """The log at ``path``, keeping the epochs up to ``through_epoch`` (all when None)."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        log = cls()
        epochs = arrays.pop("epochs").tolist()
        labels = arrays.pop("labels")
        for i, epoch in enumerate(epochs):
            if through_epoch is None or epoch <= through_epoch:
                log.add(epoch, {"labels": labels, **{head: preds[i] for head, preds in arrays.items()}})
        if through_epoch is not None and log.epochs != list(range(through_epoch + 1)):
            raise ValueError(f"{path}: epochs {log.epochs} logged, expected 0..{through_epoch}")
        return log
