"""In-memory dataset splits, batches, and the stratified validation split."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    inputs: dict[str, Tensor]
    labels: Tensor

    def to(self, device: torch.device) -> "Batch":
        non_blocking = device.type == "cuda"
        return Batch({m: x.to(device, non_blocking=non_blocking) for m, x in self.inputs.items()},
                     self.labels.to(device, non_blocking=non_blocking))

    def __len__(self) -> int:
        return len(self.labels)


class TensorSplit:
    """One split held as tensors: ``inputs[modality]`` is N×..., ``labels`` is N.

    Batches are cut by index from the stored tensors, which for small benchmarks is far faster
    than a DataLoader with per-item collation.
    """

    def __init__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> None:
        sizes = {m: len(x) for m, x in inputs.items()}
        if any(n != len(labels) for n in sizes.values()):
            raise ValueError(f"inputs and labels differ in length: {sizes}, labels {len(labels)}")
        self.inputs = dict(inputs)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def subset(self, index: Tensor) -> "TensorSplit":
        return TensorSplit({m: x[index] for m, x in self.inputs.items()}, self.labels[index])

    def select(self, modalities: tuple[str, ...]) -> "TensorSplit":
        return TensorSplit({m: self.inputs[m] for m in modalities}, self.labels)

    def for_evaluation(self) -> "TensorSplit":
        """The split as evaluation reads it; stored tensors have no training-time sampling."""
        return self

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[Batch]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield Batch({m: x[idx] for m, x in self.inputs.items()}, self.labels[idx])


@dataclass
class DatasetSplits:
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    num_classes: int
    class_names: tuple[str, ...]
    channels: dict[str, int]  # input channels per modality, for building encoders
    # What a run saw of a dataset read from disk (benchmarks.data.cache.data_fingerprint); None for
    # the datasets that ship with the package, which are fixed.
    fingerprint: dict | None = None


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded split keeping class proportions: ``round(fraction·n_c)`` of each class (≥1) held out."""
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_held = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values
