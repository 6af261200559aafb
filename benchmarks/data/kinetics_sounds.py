"""Kinetics-Sounds (31 classes, audio + video) with OGM-GE's split lists and GeWu's preprocessing.

Audio: the AST-style Kaldi fbank of GeWu's ``process_audio.py`` (1024×128, time × mel);
visual: 1-fps frames, ``frames_per_clip`` (3) sampled by segment. The lists are
``youtubeid_start_end,10,label_index``; the class names are an assumption (splits/README.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from ..core.strict import ConfigError
from .avsplit import DiskAVDataset
from .cache import SPLITS_DIR, ClipList, DiskParams, read_list_rows, split_folder
from .layouts import KS_LAYOUTS
from .media import kinetics_fbank


@dataclass(frozen=True)
class KineticsSoundsParams(DiskParams):
    layout: Literal["auto", "raw", "gewu"] = "auto"  # auto: recognised from the files (docs/datasets.md)
    frames_per_clip: int = 3  # segments a clip's frames are cut into, one frame drawn from each (DGL: 3)
    # GeWu's process_audio.py: 16 kHz, Kaldi fbank with 128 mel bins, padded or cut to 1024 frames.
    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_frames: int = 1024
    # AudioSet normalisation (x - mean) / (2 · std), as GeWu's process_audio.py.
    norm_mean: float = -4.503877
    norm_std: float = 5.141276

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_mel_bins < 1 or self.target_frames < 1 or self.norm_std <= 0:
            raise ValueError("num_mel_bins and target_frames must be >= 1 and norm_std > 0")


class KineticsSounds(DiskAVDataset):
    name = "kinetics_sounds"
    title = "Kinetics-Sounds"
    Params = KineticsSoundsParams
    layouts = KS_LAYOUTS

    @staticmethod
    def clip_list(p: KineticsSoundsParams) -> ClipList:
        folder = split_folder(KineticsSounds, p)
        names = folder / "classes.txt"
        if not names.exists():  # fixture or custom lists without names: the package's list
            names = SPLITS_DIR / KineticsSounds.name / "classes.txt"
        classes = tuple(row[0] for row in read_list_rows(names, 1))
        clips, labels, splits = [], [], []
        for split in ("train", "test"):
            path = folder / f"{split}.txt"
            for line, (clip, _, label) in enumerate(read_list_rows(path, 3), 1):
                if not label.isdigit() or int(label) >= len(classes):
                    raise ConfigError(f"{path}, row {line}: label {label!r} is not an index "
                                     f"below {len(classes)}")
                clips.append(clip)
                labels.append(int(label))
                splits.append(split)
        return ClipList(tuple(clips), tuple(labels), tuple(splits), classes)

    @staticmethod
    def audio_shape(p: KineticsSoundsParams) -> tuple[int, int]:
        return p.target_frames, p.num_mel_bins

    @staticmethod
    def audio_features(p: KineticsSoundsParams, wave: Tensor) -> Tensor:
        return kinetics_fbank(wave, p.sample_rate, p.num_mel_bins, p.target_frames, p.norm_mean, p.norm_std)

    @staticmethod
    def preprocessing(p: KineticsSoundsParams) -> dict:
        return {"sample_rate": p.sample_rate, "num_mel_bins": p.num_mel_bins, "target_frames": p.target_frames,
                "norm_mean": p.norm_mean, "norm_std": p.norm_std, "frame_size": p.frame_size}
