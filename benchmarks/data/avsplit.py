"""Splits of the datasets read from a prepared cache, with the interface of ``TensorSplit``.

Items are read by a torch DataLoader from the memory-mapped cache. Every random choice of an item
(frames inside segments, crop, flip) comes from a generator seeded from (epoch seed, cache row) by
:func:`~benchmarks.data.seeds.item_seeds`, and the epoch seed is drawn once per ``batches()`` call
from the caller's generator: batches are the same for any number of loader workers.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import repeat

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .cache import CacheArrays, DiskParams, PreparedCache, ensure_cache
from .core import Batch
from .media import sample_frame_indices
from .seeds import item_seeds

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
NORMALIZE_SCALE, NORMALIZE_SHIFT = 1 / (255 * IMAGENET_STD), -IMAGENET_MEAN / IMAGENET_STD
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
    """Items keyed by ``(cache row, item seed)``; the item's own generator makes every random choice.

    The loader fetches a whole batch at once (``__getitems__``): the batch's audio is read and converted
    in one operation each and each frame is cropped, flipped and normalised from the mapped cache straight
    into the batch tensor, so nothing is collated afterwards."""

    def __init__(self, arrays: CacheArrays, modalities: tuple[str, ...], sampling: ClipSampling) -> None:
        self.arrays, self.modalities, self.sampling = arrays, modalities, sampling

    def __getitems__(self, keys: list[tuple[int, int]]) -> dict[str, Tensor]:
        rows = [row for row, _ in keys]
        batch = {"label": torch.from_numpy(np.asarray(self.arrays.labels[rows], dtype=np.int64))}
        if "audio" in self.modalities:
            batch["audio"] = torch.from_numpy(self.arrays.audio(rows)).float().unsqueeze(1)
        if "visual" in self.modalities:
            batch["visual"] = self.frames(keys)
        return batch

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        return {name: value[0] for name, value in self.__getitems__([key]).items()}

    def frames(self, keys: list[tuple[int, int]]) -> Tensor:
        """The batch's frames, read from the mapped cache by the crop or the normalisation (no other copy).
        Every draw of the batch comes first, so the interpreter's share runs in one stretch rather than
        between image kernels that evict its caches."""
        s = self.sampling
        frames, crops = [], []
        for row, seed in keys:
            chosen, boxes = self.draw(row, seed)
            frames += chosen
            crops += boxes
        out = torch.empty(len(keys), s.frames_per_clip, 3, s.frame_size, s.frame_size)
        for target, frame, crop in zip(out.view(-1, 3, s.frame_size, s.frame_size), frames, crops or repeat(None)):
            normalize(crop_and_flip(frame, s.frame_size, *crop) if crop else frame, out=target)
        return out

    def draw(self, row: int, seed: int) -> tuple[list[Tensor], list[tuple[Box, bool]]]:
        """An item's frames and, with augmentation, each one's crop box and flip, from the item's generator
        (frame indices first, then the crops); evaluation draws nothing, so it seeds no generator."""
        s = self.sampling
        generator = torch.Generator().manual_seed(seed) if s.train else None
        stored = self.arrays.frames(row)
        chosen = sample_frame_indices(len(stored), s.frames_per_clip, s.train, generator)
        frames = [stored[i] for i in chosen]
        if not (s.train and s.augment):
            return frames, []
        draws = torch.rand(len(chosen), CROP_DRAWS + 1, generator=generator, dtype=torch.float64).tolist()
        height, width = stored.shape[-2:]
        return frames, [(crop_box(height, width, d[:CROP_DRAWS]), d[CROP_DRAWS] < 0.5) for d in draws]


def normalize(frame: Tensor, out: Tensor) -> Tensor:
    """``(frame / 255 - mean) / std`` of a uint8 frame with ImageNet's statistics (as one multiply-add,
    equal to the three operations up to float32 rounding), written into ``out`` in its layout."""
    return torch.addcmul(NORMALIZE_SHIFT, frame, NORMALIZE_SCALE, out=out)


def keep_batch(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The loader's collate function: ``ClipItems.__getitems__`` already returns the batch."""
    return batch


# torchvision's RandomResizedCrop defaults, and its number of tries before the central crop
CROP_SCALE, CROP_RATIO, CROP_TRIES = (0.08, 1.0), (3 / 4, 4 / 3), 10
CROP_DRAWS = 2 * CROP_TRIES + 2  # uniforms per box: (area, aspect) per try, then (top, left)
Box = tuple[int, int, int, int]  # top, left, height, width


def crop_box(height: int, width: int, draws: list[float]) -> Box:
    """``(top, left, h, w)`` of torchvision's ``RandomResizedCrop.get_params``, from ``CROP_DRAWS``
    uniforms in [0, 1): up to 10 tries of an area fraction uniform in ``CROP_SCALE`` and an aspect
    ratio log-uniform in ``CROP_RATIO``, the first that fits placed uniformly; else the central crop
    of the frame's ratio clamped to ``CROP_RATIO``. The same rule and distribution, drawn in one call."""
    if len(draws) != CROP_DRAWS:  # one more would place the crop with a draw meant for something else
        raise ValueError(f"crop_box takes {CROP_DRAWS} uniforms, got {len(draws)}")
    area = height * width
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for k in range(CROP_TRIES):
        target = area * (CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * draws[2 * k])
        aspect = math.exp(log_lo + (log_hi - log_lo) * draws[2 * k + 1])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(draws[-2] * (height - h + 1)), int(draws[-1] * (width - w + 1)), h, w
    ratio = width / height
    if ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        h, w = height, round(height * CROP_RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_and_flip(frame: Tensor, size: int, box: Box, flip: bool) -> Tensor:
    """RandomResizedCrop of ``box`` (:func:`crop_box`) and, if ``flip`` (drawn as ``draws[CROP_DRAWS] <
    0.5``), a horizontal flip, of a uint8 frame. The resize is torchvision's (bilinear, antialiased, on
    uint8), run on a channels-last copy of the crop: the same bytes as on a planar one, about twice as
    fast, and from the channels-last cache the copy takes whole pixel rows. The result stays
    channels-last (:func:`normalize` writes it into the planar batch in the same pass)."""
    top, left, h, w = box
    crop = frame[None, :, top:top + h, left:left + w].contiguous(memory_format=torch.channels_last)
    resized = F.interpolate(crop, size=[size, size], mode="bilinear", antialias=True)[0]
    return resized.flip(-1) if flip else resized


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
        seed from it (from torch's global RNG without one), and from it each item's seed."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        rows = self.rows[order].tolist()
        if self.sampling.train:
            seeds = item_seeds(int(torch.randint(2**62, (), generator=generator)), rows)
        else:
            seeds = [0] * n  # evaluation draws nothing
        keys = list(zip(rows, seeds))
        stop = n - n % batch_size if drop_last else n
        self._plan.batches = [keys[start:min(start + batch_size, stop)] for start in range(0, stop, batch_size)]
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
            self._dataloader = DataLoader(items, batch_sampler=self._plan, num_workers=workers, collate_fn=keep_batch,
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
