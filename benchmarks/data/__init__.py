"""Dataset registry and the one entry point the trainer uses, :func:`load_data`."""
from __future__ import annotations

import torch

from ..strict import ConfigError, from_dict
from .avdigits import AVDigits
from .avsplit import CachedAVSplit, loader_options
from .core import Batch, DatasetSplits, TensorSplit, stratified_split
from .cremad import CremaD
from .debug import DebugAV
from .kinetics_sounds import KineticsSounds

DATASETS = {cls.name: cls for cls in (AVDigits, DebugAV, CremaD, KineticsSounds)}


def get_dataset(name: str):
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}") from None


def load_data(data_cfg, modalities: tuple[str, ...] | None = None,
              device: torch.device | None = None) -> DatasetSplits:
    """Load train/test, carve the seeded stratified validation split from train.

    ``modalities`` keeps only those inputs (the unimodal reference uses one). ``device`` decides
    the loader workers and pinned memory of datasets read from disk (default: CUDA if present).
    """
    dataset = get_dataset(data_cfg.name)
    params = from_dict(dataset.Params, data_cfg.params, "data.params")
    if getattr(dataset, "reads_from_disk", False):
        train, test, class_names = dataset.load(params, loader_options(data_cfg.num_workers, device))
    else:
        train, test, class_names = dataset.load(params)
    keep, held = stratified_split(train.labels, data_cfg.val_fraction, data_cfg.split_seed)
    mods = modalities or train.modalities
    splits = [s.select(mods) for s in (train.subset(keep), train.subset(held).for_evaluation(), test)]
    return DatasetSplits(*splits, num_classes=len(class_names), class_names=class_names,
                         channels={m: dataset.channels[m] for m in mods})


__all__ = ["Batch", "CachedAVSplit", "DATASETS", "DatasetSplits", "TensorSplit", "get_dataset", "load_data"]
