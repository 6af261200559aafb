"""Decode a dataset once into a cache folder that training then memory-maps.

A cache folder ``<cache_dir>/<dataset>-<layout>-<key>/`` holds

* ``audio.f16``: float16 audio features, N × (feature shape), raw bytes;
* ``frames.u8``: uint8 frames of every clip one after another, (Σ n_frames) × S × S × 3 (channels-last:
  the crop that augmentation resizes is then a copy of whole pixel rows), raw bytes (the frame count is
  only known after decoding, so the frames are appended rather than padded);
* ``n_frames.npy``, ``labels.npy``: int64, per clip;
* ``index.json``: clip names and splits, class names, the preprocessing params and their key, the
  source layout, the shapes, the listed clips left out with the reason (``skipped``), those of them
  whose files were found but could not be decoded (``unreadable``; the others are missing), the clips
  that decoded with a warning (``warnings``), the digest of the source files (``sources``) and the
  data fingerprint a run records (``fingerprint``);
* ``problems.txt``: every unreadable clip, then every missing one, then every warning, one per line.

The key hashes every preprocessing param, the layout, the clip lists and the cache format
(``CACHE_VERSION``), so changing any of them prepares a new folder (the old one is left as it was).
The data fingerprint hashes the same but the format: a cache in another format holds the same data,
so the runs trained on it keep their names. The source digest covers the path, size and modification
time of every source file (and which listed clips are absent): when the files change, the folder is
decoded again on its next use. The folder is written under a temporary name (``.<name>.tmp-*``, locked
while it is written) and renamed when complete: an interrupted prepare leaves no half cache, and the
partial folder of a killed one is removed by the next prepare.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from torchvision.transforms.v2.functional import resize

from ..core.errors import DataNotSufficient, require_writable
from ..core.strict import ConfigError
from .fingerprint import data_fingerprint
from .layouts import ClipSources, Layout, MissingClipError, expected_layouts, frame_files, resolve_layout
from .media import MediaWarning, decode_video_frames, read_audio, read_feature_file, read_image
from .staging import publish, remove_stale_temps, staged_folder

CACHE_VERSION = 2  # the format of the files (2: frames channels-last); in the key, not in the fingerprint
DATA_VERSION = 1  # what is decoded into them: bumping it changes every data fingerprint, so every run's name
INDEX, AUDIO, FRAMES, N_FRAMES, LABELS = "index.json", "audio.f16", "frames.u8", "n_frames.npy", "labels.npy"
PROBLEMS = "problems.txt"


class FeatureShapeError(ConfigError):
    """Precomputed audio features do not have the shape the configured pipeline gives."""


@dataclass(frozen=True)
class DiskParams:
    """Params shared by the datasets read from disk (each dataset adds its audio pipeline)."""

    root: str | None = None  # the dataset folder, in one of the dataset's layouts
    cache_dir: str | None = None  # default: <root>/.geomreg-cache
    layout: str = "auto"
    split_dir: str | None = None  # folder of split lists; default: the standard lists in the package
    frames_per_clip: int = 1
    frame_size: int = 224  # frames are stored and fed as S×S
    sample_rate: int = 16000
    augment: bool = True  # RandomResizedCrop + horizontal flip of training frames

    def __post_init__(self) -> None:
        for name in ("frames_per_clip", "frame_size", "sample_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ClipList:
    """The clips of the split lists, in list order (train first, then test)."""

    clips: tuple[str, ...]
    labels: tuple[int, ...]
    splits: tuple[str, ...]
    class_names: tuple[str, ...]

    @cached_property
    def digest(self) -> str:
        blob = json.dumps([self.clips, self.labels, self.splits, self.class_names]).encode()
        return hashlib.sha1(blob).hexdigest()


SPLITS_DIR = Path(__file__).with_name("splits")


def split_folder(dataset, p: DiskParams) -> Path:
    return Path(p.split_dir).expanduser() if p.split_dir else SPLITS_DIR / dataset.name


def read_list_rows(path: Path, fields: int) -> list[list[str]]:
    """The first ``fields`` comma-separated fields of each row of a split list; a UTF-8 BOM, CRLF
    line ends and blank lines are ignored."""
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} not found")
    rows = [[f.strip() for f in line.split(",")] for line in path.read_text(encoding="utf-8-sig").splitlines()
            if line.strip()]
    short = next((i for i, row in enumerate(rows, 1) if len(row) < fields), None)
    if short is not None:
        raise ConfigError(f"{path}, row {short}: expected {fields} comma-separated fields, "
                          f"got {rows[short - 1]}")
    return [row[:fields] for row in rows]


class CacheArrays:
    """Memory-mapped views of one cache, opened on first use: in each loader worker, not pickled."""

    def __init__(self, path: Path, audio_shape: tuple[int, ...], frame_size: int, n_frames: np.ndarray,
                 labels: np.ndarray) -> None:
        self.path, self.labels = path, labels
        self.audio_shape = audio_shape
        self.frame_shape = (frame_size, frame_size, 3)
        self.starts = np.concatenate([[0], np.cumsum(n_frames)]).tolist()
        self._audio: np.ndarray | None = None
        self._frames: torch.Tensor | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_audio": None, "_frames": None}

    def audio(self, rows: int | list[int]) -> np.ndarray:
        """The float16 features of a row, or of a list of rows read in one copy."""
        if self._audio is None:
            shape = (len(self.starts) - 1, *self.audio_shape)
            # a plain array: indexing skips np.memmap's bookkeeping (the mapping lives as long as the array)
            self._audio = np.memmap(self.path / AUDIO, np.float16, "r", shape=shape).view(np.ndarray)
        return self._audio[rows]

    def frames(self, row: int) -> torch.Tensor:
        """The row's frames, n × 3 × S × S: a read-only view of the mapped file (writing to it crashes),
        which stores them n × S × S × 3, so with channels-last strides; nothing is copied until a frame
        is cropped or normalised."""
        if self._frames is None:
            stored = np.memmap(self.path / FRAMES, np.uint8, "r", shape=(self.starts[-1], *self.frame_shape))
            self._frames = read_only_tensor(stored).permute(0, 3, 1, 2)
        return self._frames[self.starts[row]:self.starts[row + 1]]


def read_only_tensor(mapped: np.memmap) -> torch.Tensor:
    """A tensor over a read-only mapping, without torch's warning that it has no read-only tensors. A
    copy-on-write mapping would be writable, but a large cache's is refused (it counts as memory)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        return torch.from_numpy(mapped)


@dataclass(frozen=True)
class PreparedCache:
    path: Path
    index: dict
    labels: np.ndarray
    n_frames: np.ndarray

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.index["class_names"])

    @property
    def skipped(self) -> dict[str, str]:
        """Every listed clip left out, with the reason: unreadable or missing."""
        return self.index["skipped"]

    @property
    def unreadable(self) -> dict[str, str]:
        """The left-out clips whose files were found but could not be decoded, with the decoder's reason
        (a corrupt file: download it again)."""
        return {clip: self.skipped[clip] for clip in self.index["unreadable"]}

    @property
    def missing(self) -> dict[str, str]:
        """The left-out clips whose files were not found (usually a wrong root or layout)."""
        unreadable = set(self.index["unreadable"])
        return {clip: why for clip, why in self.skipped.items() if clip not in unreadable}

    @property
    def warnings(self) -> dict[str, list[str]]:
        return self.index["warnings"]

    @property
    def fingerprint(self) -> dict:
        return self.index["fingerprint"]

    @property
    def problems_log(self) -> Path:
        return self.path / PROBLEMS

    def rows_of(self, split: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.index["splits"]) == split)

    def arrays(self) -> CacheArrays:
        return CacheArrays(self.path, tuple(self.index["audio_shape"]), self.index["frame_size"], self.n_frames,
                          self.labels)


def open_cache(path: Path) -> PreparedCache:
    index = json.loads((path / INDEX).read_text())
    return PreparedCache(path, index, np.load(path / LABELS), np.load(path / N_FRAMES))


def dataset_root(dataset, p: DiskParams) -> Path:
    if p.root is None:
        raise ConfigError(f"{dataset.title}: no dataset folder; set data.params.root, e.g. "
                          f"make table1 DATA_ROOT=/data/{dataset.name}. Accepted layouts:\n"
                          f"{expected_layouts(dataset.layouts)}")
    return Path(p.root).expanduser()


def cache_root(dataset, p: DiskParams) -> Path:
    """The folder the caches of ``p`` live in: ``cache_dir``, else ``<root>/.geomreg-cache``."""
    return Path(p.cache_dir).expanduser() if p.cache_dir else dataset_root(dataset, p) / ".geomreg-cache"


def ensure_cache(dataset, p: DiskParams) -> PreparedCache:
    """The cache for these params, prepared from ``p.root`` on first use and whenever its files changed."""
    cache = prepare(dataset, dataset_root(dataset, p), cache_root(dataset, p), p)
    if cache.skipped:
        warnings.warn(f"{dataset.title}: {len(cache.skipped)} listed clips are left out ({len(cache.unreadable)} "
                      f"unreadable, {len(cache.missing)} missing; names in {cache.problems_log}); `python -m "
                      f"benchmarks data-check {dataset.name}` lists them", stacklevel=2)
    return cache


def prepared_cache(dataset, p: DiskParams) -> PreparedCache | None:
    """The cache last prepared for ``p``, without checking its source files; ``None`` if there is none."""
    if p.root is None or not Path(p.root).expanduser().is_dir():
        return None
    plan = CachePlan.make(dataset, dataset_root(dataset, p), p)
    path = cache_root(dataset, p) / plan.folder_name
    return open_cache(path) if (path / INDEX).exists() else None


def prepare(dataset, raw_root: str | Path, out_root: str | Path, params: DiskParams,
            workers: int | None = None, force: bool = False) -> PreparedCache:
    """Decode every listed clip of ``raw_root`` into a cache folder under ``out_root``, or reuse the
    folder when its source files are unchanged (``force``: decode again regardless).

    Missing and unreadable clips are left out and recorded by name in the index; a shape mismatch
    of precomputed features stops at once, since every clip would fail the same way.
    ``workers`` decoding processes (default: up to 8 on a machine with several cores).
    """
    plan = CachePlan.make(dataset, Path(raw_root), params)
    out_root = Path(out_root)
    final = out_root / plan.folder_name
    remove_stale_temps(out_root)
    scan = locate_sources(plan)
    if (final / INDEX).exists() and not force:
        cache = open_cache(final)
        if up_to_date(cache.index, scan.digest):
            return cache
        print(f"{dataset.title}: the files under {plan.root} changed since {final} was prepared; decoding again",
              file=sys.stderr)
    if not scan.found:
        example = next(iter(scan.missing.values()), "the split lists are empty")
        raise DataNotSufficient(f"{dataset.title}: none of the {len(plan.clips.clips)} listed clips was found "
                                f"under {plan.root} (layout {plan.layout.example()}); e.g. {example}")
    require_writable(out_root, "cache folder (set cache_dir, or CACHE_DIR= for make, to a writable folder)")
    with staged_folder(final) as temp:
        write_cache(temp, plan, scan, workers)
        publish(temp, final, keep_existing=lambda existing: not force and up_to_date(
            json.loads((existing / INDEX).read_text()), scan.digest))
    return open_cache(final)


def up_to_date(index: dict, digest: str) -> bool:
    """The index was written from these source files, by a prepare that tells unreadable clips from
    missing ones (an older index is decoded again)."""
    return index.get("sources") == digest and "unreadable" in index


@dataclass(frozen=True)
class CachePlan:
    """What a cache is built from: the dataset, its params, the source root and layout, the clip lists."""

    dataset: type
    params: DiskParams
    root: Path
    layout: Layout
    clips: ClipList

    @classmethod
    def make(cls, dataset, root: Path, params: DiskParams) -> "CachePlan":
        try:
            layout = resolve_layout(dataset.layouts, root, params.layout, dataset.title)
        except FileNotFoundError:
            reject_cache_as_root(dataset, root)
            raise
        return cls(dataset, params, root, layout, clip_list(dataset, params))

    @property
    def data_key(self) -> str:
        """Hashes what is decoded (dataset, layout, preprocessing, clips): the data fingerprint's key."""
        blob = {"version": DATA_VERSION, "dataset": self.dataset.name, "layout": self.layout.name,
                "preprocessing": self.dataset.preprocessing(self.params), "clips": self.clips.digest}
        return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        """The folder's key: the data key and the cache format."""
        return hashlib.sha1(f"{self.data_key} format {CACHE_VERSION}".encode()).hexdigest()[:12]

    @property
    def folder_name(self) -> str:
        return f"{self.dataset.name}-{self.layout.name}-{self.key}"


def clip_list(dataset, p: DiskParams) -> ClipList:
    """The dataset's split lists, parsed once per process while their files are unchanged (a grid
    names every run directory after the cache, whose name depends on them)."""
    folder = split_folder(dataset, p)
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return parsed_clip_list(dataset, p, tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@lru_cache(maxsize=8)
def parsed_clip_list(dataset, p: DiskParams, stamp: tuple) -> ClipList:
    return dataset.clip_list(p)


def reject_cache_as_root(dataset, root: Path) -> None:
    """A prepared cache given where the dataset folder belongs (it matches no layout) gets a message
    saying how to point at it."""
    if (root / INDEX).is_file():
        cache_dir = root.parent
    elif root.is_dir() and any((child / INDEX).is_file() for child in root.iterdir() if child.is_dir()):
        cache_dir = root
    else:
        return
    raise ConfigError(f"{root} is a cache written by `prepare`, not the {dataset.title} folder: give the dataset "
                      f"folder as the root (--root / --raw, DATA_ROOT= for make) and this cache as "
                      f"--set cache_dir={cache_dir} (CACHE_DIR={cache_dir} for make)")


@dataclass(frozen=True)
class SourceScan:
    """The source files of every listed clip found, the reason for each one not found, and a digest
    of what a clip's bytes are: path, size and modification time of every file, and the absent clips."""

    found: list[tuple[int, ClipSources]]
    missing: dict[str, str]
    digest: str


def locate_sources(plan: CachePlan) -> SourceScan:
    found, missing, digest = [], {}, hashlib.sha1()
    for i, clip in enumerate(plan.clips.clips):
        try:
            src = plan.layout.sources(plan.root, clip)
        except MissingClipError as err:
            missing[clip] = str(err)
            digest.update(f"absent {clip}\n".encode())
            continue
        found.append((i, src))
        for path in source_files(src):
            stat = path.stat()
            digest.update(f"{path.relative_to(plan.root)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return SourceScan(found, missing, digest.hexdigest())


def source_files(src: ClipSources) -> list[Path]:
    visual = frame_files(src.visual) if src.visual.is_dir() else [src.visual]
    return [src.audio, *visual]


def write_cache(folder: Path, plan: CachePlan, scan: SourceScan, workers: int | None) -> None:
    """Decode the found clips into ``folder``; clips that fail are left out with the reason."""
    dataset, p, clips = plan.dataset, plan.params, plan.clips
    rows, n_frames, unreadable, notes = [], [], {}, {}
    with open(folder / AUDIO, "wb") as audio_out, open(folder / FRAMES, "wb") as frames_out:
        decoded = decode_all(dataset, p, [src for _, src in scan.found], workers)
        progress = tqdm(zip(scan.found, decoded), total=len(scan.found), desc=f"prepare {dataset.name}")
        for (i, _), (result, error, warned) in progress:
            if warned:
                notes[clips.clips[i]] = warned
            if error:
                unreadable[clips.clips[i]] = error
                continue
            audio, frames = result
            audio_out.write(audio.astype(np.float16).tobytes())
            frames_out.write(np.ascontiguousarray(frames).tobytes())
            rows.append(i)
            n_frames.append(len(frames))
    np.save(folder / N_FRAMES, np.asarray(n_frames, np.int64))
    np.save(folder / LABELS, np.asarray([clips.labels[i] for i in rows], np.int64))
    used = ClipList(tuple(clips.clips[i] for i in rows), tuple(clips.labels[i] for i in rows),
                    tuple(clips.splits[i] for i in rows), clips.class_names)
    listed = dict(Counter(clips.splits))
    index = {
        "version": CACHE_VERSION, "dataset": dataset.name, "key": plan.key,
        "preprocessing": dataset.preprocessing(p), "layout": plan.layout.name, "source_root": str(plan.root),
        "audio_precomputed": plan.layout.audio_is_feature,
        "class_names": list(clips.class_names), "clips": list(used.clips), "splits": list(used.splits),
        "skipped": dict(sorted({**scan.missing, **unreadable}.items())), "unreadable": sorted(unreadable),
        "warnings": dict(sorted(notes.items())), "listed": listed,
        "audio_shape": list(dataset.audio_shape(p)), "frame_size": p.frame_size, "sources": scan.digest,
        "fingerprint": data_fingerprint(plan.data_key, used.digest, used.splits, listed),
    }
    (folder / INDEX).write_text(json.dumps(index, indent=1))
    (folder / PROBLEMS).write_text("".join(f"unreadable {clip}: {why}\n" for clip, why in sorted(unreadable.items()))
                                   + "".join(f"missing {clip}: {why}\n" for clip, why in sorted(scan.missing.items()))
                                   + "".join(f"warning {clip}: {note}\n" for clip, warned in sorted(notes.items())
                                             for note in warned))


def decode_all(dataset, p: DiskParams, sources: list[ClipSources],
               workers: int | None) -> Iterator[tuple[tuple[np.ndarray, np.ndarray] | None, str | None]]:
    """Decoded clips in order; in ``workers`` processes when more than one."""
    workers = min(8, (os.cpu_count() or 1) - 1) if workers is None else workers
    decode = partial(decode_clip_or_reason, dataset, p)
    if workers <= 1:
        yield from map(decode, sources)
        return
    # One torch thread per process: the processes already use the cores.
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                               initargs=(1,))
    try:
        yield from pool.map(decode, sources, chunksize=4)
    finally:
        pool.shutdown(cancel_futures=True)


def decode_clip_or_reason(dataset, p: DiskParams, src: ClipSources):
    """``(decoded, None, warnings)``, or ``(None, reason, warnings)`` for a clip whose files cannot be
    read; ``warnings`` are the clip's :class:`MediaWarning` messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MediaWarning)
        try:
            result = decode_clip(dataset, p, src), None
        except FeatureShapeError:
            raise
        except (OSError, ValueError) as err:
            result = None, str(err)
    for w in caught:
        if not issubclass(w.category, MediaWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return *result, [str(w.message) for w in caught if issubclass(w.category, MediaWarning)]


def decode_clip(dataset, p: DiskParams, src: ClipSources) -> tuple[np.ndarray, np.ndarray]:
    """Audio features (the dataset's shape) and the clip's frames, n × S × S × 3 uint8 (channels-last)."""
    if src.audio_is_feature:
        audio = read_feature_file(src.audio)
        check_feature_shape(src.audio, audio.shape, dataset.audio_shape(p))
    else:
        wave = read_audio(src.audio, p.sample_rate, min_rate=min(p.sample_rate, dataset.source_rate))
        audio = dataset.audio_features(p, wave).numpy()
    return audio, read_frames(src, p.frame_size).permute(0, 2, 3, 1).numpy()


def check_feature_shape(path: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(expected):
        raise FeatureShapeError(
            f"{path}: precomputed audio features of shape {tuple(shape)}, but the configured pipeline gives "
            f"{tuple(expected)}. Precomputed features are read as they are, so they come from another "
            "pipeline than the config's (MMPareto's CREMA-D .pt files hold the Kinetics-style fbank, not "
            "OGM-GE's STFT): use a layout with waveforms, or set the audio params to match the files.")


def read_frames(src: ClipSources, size: int) -> torch.Tensor:
    if src.visual_is_video:
        frames = [torch.from_numpy(f).permute(2, 0, 1) for f in decode_video_frames(src.visual)]
    else:
        files = frame_files(src.visual)
        if not files:
            raise ValueError(f"frame folder {src.visual} holds no images")
        frames = [read_image(f) for f in files]
    return torch.stack([resize(f, [size, size], antialias=True) for f in frames])
