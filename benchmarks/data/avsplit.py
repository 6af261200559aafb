"""Splits of the datasets read from a prepared cache, with the interface of ``TensorSplit``.

Items are read by a torch DataLoader from the memory-mapped cache. Every random choice of an item
(frames inside segments, crop, flip) comes from a generator seeded by (epoch seed, cache row),
and the epoch seed is drawn once per ``batches()`` call from the caller's generator: batches are
the same for any number of loader workers.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2.functional import horizontal_flip, resized_crop

from .cache import CacheArrays, DiskParams, PreparedCache, ensure_cache
from .core import Batch
from .media import sample_frame_indices

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
MODALITIES = ("audio", "visual")


@dataclass(frozen=True)
class LoaderOptions:
    num_workers: int = 0
    pin_memory: bool = False


def loader_options(num_workers: int, device: torch.device | None = None) -> LoaderOptions:
    """``num_workers=-1``: several workers on a CUDA machine, none on CPU (where they only compete
    with the training threads)."""
    cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
    if num_workers < 0:
        num_workers = min(8, (os.cpu_count() or 1) - 1) if cuda else 0
    return LoaderOptions(num_workers, pin_memory=cuda)


@dataclass(frozen=True)
class ClipSampling:
    frames_per_clip: int
    frame_size: int
    train: bool  # a random frame inside each segment (else the centres)
    augment: bool  # RandomResizedCrop + horizontal flip of each frame, in training only


class ClipItems(Dataset):
    """Items keyed by ``(cache row, epoch seed)``; the row's own generator makes every random choice."""

    def __init__(self, arrays: CacheArrays, modalities: tuple[str, ...], sampling: ClipSampling) -> None:
        self.arrays, self.modalities, self.sampling = arrays, modalities, sampling

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        row, epoch_seed = key
        item = {"label": torch.tensor(self.arrays.labels[row])}
        if "audio" in self.modalities:
            item["audio"] = torch.from_numpy(self.arrays.audio(row).astype(np.float32)).unsqueeze(0)
        if "visual" in self.modalities:
            item["visual"] = self.frames(row, torch.Generator().manual_seed(item_seed(epoch_seed, row)))
        return item

    def frames(self, row: int, generator: torch.Generator) -> Tensor:
        s = self.sampling
        stored = self.arrays.frames(row)
        chosen = sample_frame_indices(len(stored), s.frames_per_clip, s.train, generator)
        picked = torch.from_numpy(stored[chosen])
        if s.train and s.augment:
            picked = torch.stack([crop_and_flip(frame, s.frame_size, generator) for frame in picked])
        return (picked.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD


def item_seed(epoch_seed: int, row: int) -> int:
    return int(np.random.SeedSequence([epoch_seed, row]).generate_state(1, np.uint64)[0] >> 1)


def crop_and_flip(frame: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """torchvision's RandomResizedCrop (default scale and ratio) and RandomHorizontalFlip, drawn
    from ``generator`` instead of the global RNG."""
    with torch.random.fork_rng(devices=[]):  # get_params draws from the global CPU generator
        # the CPU generator only: torch.manual_seed would also (lazily) seed every accelerator, per item
        torch.default_generator.manual_seed(int(torch.randint(2**62, (), generator=generator)))
        top, left, height, width = RandomResizedCrop.get_params(frame, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    frame = resized_crop(frame, top, left, height, width, [size, size], antialias=True)
    return horizontal_flip(frame) if torch.rand((), generator=generator) < 0.5 else frame


class PlannedBatches:
    """Batch sampler whose batches are set before each pass, so one DataLoader (and its persistent
    workers) serves every epoch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class CachedAVSplit:
    """One split of a prepared cache: ``rows`` of the cache and their labels."""

    def __init__(self, arrays: CacheArrays, rows: Tensor, labels: Tensor, modalities: tuple[str, ...],
                 sampling: ClipSampling, loader: LoaderOptions) -> None:
        self.arrays, self.rows, self.labels = arrays, rows, labels
        self.modalities, self.sampling, self.loader = modalities, sampling, loader
        self._plan = PlannedBatches()
        self._dataloader: DataLoader | None = None
        self._passes = 0  # batches() calls so far: persistent workers serve one pass at a time

    def __len__(self) -> int:
        return len(self.labels)

    def _with(self, rows: Tensor, labels: Tensor, modalities: tuple[str, ...],
              sampling: ClipSampling) -> "CachedAVSplit":
        return CachedAVSplit(self.arrays, rows, labels, modalities, sampling, self.loader)

    def subset(self, index: Tensor) -> "CachedAVSplit":
        return self._with(self.rows[index], self.labels[index], self.modalities, self.sampling)

    def select(self, modalities: tuple[str, ...]) -> "CachedAVSplit":
        return self._with(self.rows, self.labels, tuple(modalities), self.sampling)

    def for_evaluation(self) -> "CachedAVSplit":
        """The same clips read as evaluation reads them: segment centres, no augmentation."""
        return self._with(self.rows, self.labels, self.modalities, replace(self.sampling, train=False))

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[Batch]:
        """Batches in order, or shuffled by ``generator``; a training split also draws the epoch's
        seed from it (from torch's global RNG without one)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        epoch_seed = int(torch.randint(2**62, (), generator=generator)) if self.sampling.train else 0
        rows = self.rows[order].tolist()
        stop = n - n % batch_size if drop_last else n
        self._plan.batches = [[(row, epoch_seed) for row in rows[start:min(start + batch_size, stop)]]
                              for start in range(0, stop, batch_size)]
        self._passes += 1
        this_pass = self._passes
        for item in self._get_dataloader():
            self._check_pass(this_pass)
            yield Batch({m: item[m] for m in self.modalities}, item["label"])
        self._check_pass(this_pass)

    def _check_pass(self, this_pass: int) -> None:
        if self._passes != this_pass:
            raise RuntimeError("a CachedAVSplit was iterated again before an earlier pass ended; "
                               "its loader workers serve one pass at a time")

    def _get_dataloader(self) -> DataLoader:
        if self._dataloader is None:
            items = ClipItems(self.arrays, self.modalities, self.sampling)
            workers = self.loader.num_workers
            self._dataloader = DataLoader(items, batch_sampler=self._plan, num_workers=workers,
                                          pin_memory=self.loader.pin_memory, persistent_workers=workers > 0)
        return self._dataloader


class DiskAVDataset:
    """Base of the audio-visual datasets read from disk. A subclass names its ``layouts`` and its
    audio pipeline (``audio_shape``, ``audio_features``, ``preprocessing``) and lists its clips."""

    channels = {"audio": 1, "visual": 3}
    reads_from_disk = True  # load() takes the loader options
    # The rate of the dataset's own audio (CREMA-D's wavs; the 16 kHz audio Kinetics-Sounds pipelines
    # extract): a file below it and below the pipeline's rate is reported, since upsampling adds nothing.
    source_rate = 16000

    @classmethod
    def load(cls, p: DiskParams, loader: LoaderOptions = LoaderOptions()) -> tuple[CachedAVSplit, CachedAVSplit,
                                                                                     tuple[str, ...]]:
        """Train and test splits of the cache for ``p`` (prepared from ``p.root`` on first use)."""
        return cls.from_cache(ensure_cache(cls, p), p, loader)

    @staticmethod
    def from_cache(cache: PreparedCache, p: DiskParams,
                   loader: LoaderOptions) -> tuple[CachedAVSplit, CachedAVSplit, tuple[str, ...]]:
        train, test = (cached_split(cache, name, p, loader) for name in ("train", "test"))
        return train, test, cache.class_names


def cached_split(cache: PreparedCache, name: str, p: DiskParams, loader: LoaderOptions) -> CachedAVSplit:
    rows = torch.from_numpy(cache.rows_of(name))
    sampling = ClipSampling(p.frames_per_clip, p.frame_size, train=name == "train", augment=p.augment)
    labels = torch.from_numpy(cache.labels[rows.numpy()])
    return CachedAVSplit(cache.arrays(), rows, labels, MODALITIES, sampling, loader)
