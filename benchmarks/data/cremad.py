"""CREMA-D (6 emotions, audio + face video) with OGM-GE's split and preprocessing.

Audio: the log-magnitude STFT of OGM-GE/DGL (257×188); visual: 1-fps frames, ``frames_per_clip``
of them sampled by segment (DGL's default: one). Labels in OGM-GE's order NEU, HAP, SAD, FEA, DIS,
ANG = 0..5 (the order of ``stat.csv``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from ..core.strict import ConfigError
from .avsplit import DiskAVDataset
from .cache import ClipList, DiskParams, read_list_rows, split_folder
from .layouts import CREMAD_LAYOUTS
from .media import cremad_spectrogram

CLASS_ORDER = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")


@dataclass(frozen=True)
class CremadParams(DiskParams):
    layout: Literal["auto", "raw", "ogm_ge", "mmpareto"] = "auto"  # auto: recognised from the files (docs/datasets.md)
    frames_per_clip: int = 1  # segments a clip's frames are cut into, one frame drawn from each (DGL: 1)
    # The field's audio pipeline: resampled to 22,050 Hz, tiled to 3 s, STFT n_fft 512 hop 353, log|S|.
    sample_rate: int = 22050
    clip_seconds: float = 3.0
    n_fft: int = 512
    hop_length: int = 353

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clip_seconds <= 0 or self.n_fft < 2 or self.hop_length < 1:
            raise ValueError("clip_seconds must be > 0, n_fft >= 2 and hop_length >= 1")


class CremaD(DiskAVDataset):
    name = "cremad"
    title = "CREMA-D"
    Params = CremadParams
    layouts = CREMAD_LAYOUTS

    @staticmethod
    def clip_list(p: CremadParams) -> ClipList:
        folder = split_folder(CremaD, p)
        stat = folder / "stat.csv"
        classes = tuple(row[0] for row in read_list_rows(stat, 1)) if stat.exists() else CLASS_ORDER
        clips, labels, splits = [], [], []
        for split in ("train", "test"):
            path = folder / f"{split}.csv"
            for line, (clip, label) in enumerate(read_list_rows(path, 2), 1):
                if label not in classes:
                    raise ConfigError(f"{path}, row {line}: label {label!r} is not one of {list(classes)}")
                clips.append(clip)
                labels.append(classes.index(label))
                splits.append(split)
        return ClipList(tuple(clips), tuple(labels), tuple(splits), classes)

    @staticmethod
    def audio_shape(p: CremadParams) -> tuple[int, int]:
        return p.n_fft // 2 + 1, 1 + round(p.clip_seconds * p.sample_rate) // p.hop_length

    @staticmethod
    def audio_features(p: CremadParams, wave: Tensor) -> Tensor:
        return cremad_spectrogram(wave, p.sample_rate, p.clip_seconds, p.n_fft, p.hop_length)

    @staticmethod
    def preprocessing(p: CremadParams) -> dict:
        return {"sample_rate": p.sample_rate, "clip_seconds": p.clip_seconds, "n_fft": p.n_fft,
                "hop_length": p.hop_length, "frame_size": p.frame_size}
