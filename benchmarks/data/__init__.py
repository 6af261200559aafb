"""Dataset registry and the one entry point the trainer uses, :func:`load_data`."""
from __future__ import annotations

import torch

from ..core.strict import ConfigError, did_you_mean, from_dict
from .avdigits import AVDigits
from .avsplit import CachedAVSplit, loader_options
from .cache import ensure_cache, prepared_cache
from .core import Batch, DatasetSplits, TensorSplit, stratified_split
from .cremad import CremaD
from .debug import DebugAV
from .fingerprint import fingerprint_tag
from .kinetics_sounds import KineticsSounds

DATASETS = {cls.name: cls for cls in (AVDigits, DebugAV, CremaD, KineticsSounds)}


def get_dataset(name: str):
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}"
                          + did_you_mean(name, DATASETS)) from None


def load_data(data_cfg, modalities: tuple[str, ...] | None = None,
              device: torch.device | None = None) -> DatasetSplits:
    """Load train/test, carve the seeded stratified validation split from train.

    ``modalities`` keeps only those inputs (the unimodal reference uses one). ``device`` decides
    the loader workers and pinned memory of datasets read from disk (default: CUDA if present).
    """
    dataset = get_dataset(data_cfg.name)
    params = from_dict(dataset.Params, data_cfg.params, "data.params")
    fingerprint = None
    if getattr(dataset, "reads_from_disk", False):
        cache = ensure_cache(dataset, params)
        train, test, class_names = dataset.from_cache(cache, params, loader_options(data_cfg.num_workers, device))
        fingerprint = cache.fingerprint
    else:
        train, test, class_names = dataset.load(params)
    keep, held = stratified_split(train.labels, data_cfg.val_fraction, data_cfg.split_seed)
    mods = modalities or train.modalities
    splits = [s.select(mods) for s in (train.subset(keep), train.subset(held).for_evaluation(), test)]
    return DatasetSplits(*splits, num_classes=len(class_names), class_names=class_names,
                         channels={m: dataset.channels[m] for m in mods}, fingerprint=fingerprint)


def data_tag(data_cfg) -> str | None:
    """The part of a run directory's name that says which data the run trains on.

    ``None`` for the datasets that ship with the package (they are fixed, so their runs keep their
    names); for a dataset read from a root, the digest of the prepared cache's fingerprint, so that
    a run on another copy (a partial one, or one where clips were fixed) never counts as the same
    run. Reads the cache last prepared without checking its files (the grid refreshes it first);
    ``data-unprepared`` while there is none, a name no trained run has."""
    dataset = get_dataset(data_cfg.name)
    if not getattr(dataset, "reads_from_disk", False):
        return None
    cache = prepared_cache(dataset, from_dict(dataset.Params, data_cfg.params, "data.params"))
    return fingerprint_tag(cache.fingerprint) if cache is not None else "data-unprepared"


__all__ = ["Batch", "CachedAVSplit", "DATASETS", "DatasetSplits", "TensorSplit", "data_tag", "fingerprint_tag",
           "get_dataset", "load_data"]
