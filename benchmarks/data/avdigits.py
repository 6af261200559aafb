"""AV-Digits, the embedded default benchmark: real handwritten digits (visual) paired within
class with spoken digit words from the espeak-ng synthesizer (audio). The compact features ship in
``avdigits.npz`` (built by ``avdigits_build.py``; see AVDIGITS.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .core import TensorSplit

DEFAULT_FILE = Path(__file__).with_name("avdigits.npz")


@dataclass(frozen=True)
class AVDigitsParams:
    # Gaussian noise (in units of the standardized features) added once per sample with
    # ``noise_seed``; a fixed corruption rather than augmentation, so evaluation is deterministic.
    audio_noise: float = 0.0
    visual_noise: float = 0.0
    noise_seed: int = 0
    # Keep only this fraction of the training pairs (per class), to make a modality data-starved.
    train_fraction: float = 1.0
    path: str | None = None  # another build of the file; default: the one shipped in the package

    def __post_init__(self) -> None:
        if self.audio_noise < 0 or self.visual_noise < 0:
            raise ValueError("audio_noise and visual_noise must be >= 0")
        if not 0 < self.train_fraction <= 1:
            raise ValueError("train_fraction must be in (0, 1]")


class AVDigits:
    name = "avdigits"
    Params = AVDigitsParams
    channels = {"audio": 1, "visual": 1}

    @staticmethod
    def load(p: AVDigitsParams) -> tuple[TensorSplit, TensorSplit, tuple[str, ...]]:
        arrays = read_npz(Path(p.path) if p.path else DEFAULT_FILE)
        meta = json.loads(str(arrays["meta"]))
        audio = torch.from_numpy(arrays["audio"].astype(np.float32)).unsqueeze(1)
        visual = torch.from_numpy(arrays["visual"].astype(np.float32)).unsqueeze(1)
        labels = torch.from_numpy(arrays["label"].astype(np.int64))
        is_train = torch.from_numpy(arrays["split"] == 0)

        gen = torch.Generator().manual_seed(p.noise_seed)
        inputs = {}
        for name, x, noise in (("audio", audio, p.audio_noise), ("visual", visual, p.visual_noise)):
            x = standardize(x, x[is_train])
            inputs[name] = x + noise * torch.randn(x.shape, generator=gen) if noise > 0 else x
        full = TensorSplit(inputs, labels)
        train = full.subset(torch.nonzero(is_train).flatten())
        if p.train_fraction < 1:
            train = train.subset(per_class_prefix(train.labels, p.train_fraction))
        test = full.subset(torch.nonzero(~is_train).flatten())
        return train, test, tuple(meta["class_names"])


def read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(
            f"AV-Digits feature file not found: {path}. It ships with the package; regenerate it with "
            "`python -m benchmarks.data.avdigits_build --out benchmarks/data/avdigits.npz`."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in ("audio", "visual", "label", "split", "meta")}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"AV-Digits feature file {path} is unreadable or incomplete: {err}") from err


def standardize(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance with statistics of the training part only."""
    return (x - reference.mean()) / reference.std().clamp_min(1e-6)


def per_class_prefix(labels: torch.Tensor, fraction: float) -> torch.Tensor:
    keep = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]
    return torch.cat([idx[:max(1, round(fraction * len(idx)))] for idx in keep]).sort().values
