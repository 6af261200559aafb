"""Dataset registry and the one entry point the trainer uses, :func:`load_data`."""
from __future__ import annotations

from ..strict import ConfigError, from_dict
from .avdigits import AVDigits
from .core import Batch, DatasetSplits, TensorSplit, stratified_split
from .debug import DebugAV

DATASETS = {cls.name: cls for cls in (AVDigits, DebugAV)}


def get_dataset(name: str):
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}") from None


def load_data(data_cfg, modalities: tuple[str, ...] | None = None) -> DatasetSplits:
    """Load train/test, carve the seeded stratified validation split from train.

    ``modalities`` keeps only those inputs (the unimodal reference uses one).
    """
    dataset = get_dataset(data_cfg.name)
    params = from_dict(dataset.Params, data_cfg.params, "data.params")
    train, test, class_names = dataset.load(params)
    keep, held = stratified_split(train.labels, data_cfg.val_fraction, data_cfg.split_seed)
    splits = [train.subset(keep), train.subset(held), test]
    mods = modalities or train.modalities
    splits = [TensorSplit({m: s.inputs[m] for m in mods}, s.labels) for s in splits]
    return DatasetSplits(*splits, num_classes=len(class_names), class_names=class_names,
                         channels={m: dataset.channels[m] for m in mods})


__all__ = ["Batch", "DATASETS", "DatasetSplits", "TensorSplit", "get_dataset", "load_data"]
