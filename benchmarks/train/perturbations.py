"""Test-time degradations of one modality (the paper's robustness protocol, Appendix D.2 and Fig. 9).

Each is a :class:`benchmarks.train.evaluation.Perturbation`: it changes a batch's inputs or its pooled
embeddings on the way through the evaluation the trainer uses. Every random choice a sample gets is
drawn from a generator seeded by (protocol seed, degradation, the sample's position in the split),
never by the batch: results do not depend on the batch size, and every run of a grid sees the same
corruption of the same sample (so comparisons between runs are paired). The level is not part of the
seed, so the levels of one degradation share their draws (a sample missing at p = 0.1 is missing at
every larger p; the noise direction is the same at every SNR). ``docs/robustness.md`` defines each.

Shapes: audio ``(B, 1, A0, A1)`` (which axis is time is the dataset's: :data:`AUDIO_AXES`), visual
``(B, C, H, W)`` (one frame) or ``(B, T, C, H, W)`` (T frames, averaged by the encoder).
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# Which axes of an audio input (after the channel) are frequency and time, per dataset.
AUDIO_AXES: dict[str, tuple[str, str]] = {
    "avdigits": ("freq", "time"),  # 40 log-mel bins × 51 frames
    "cremad": ("freq", "time"),  # 257 STFT bins × 188 frames
    "kinetics_sounds": ("time", "freq"),  # 1024 frames × 128 fbank bins
    "debug": ("freq", "time"),  # random tensors; the order is arbitrary
}


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def seeded_generator(*entropy: int) -> torch.Generator:
    state = np.random.SeedSequence(list(entropy)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> 1))


def sample_generator(seed: int, name: str, row: int) -> torch.Generator:
    """The generator of one sample's draws for one degradation."""
    return seeded_generator(seed, zlib.crc32(name.encode()), row)


def sample_shares(n: int, share: float, seed: int, name: str) -> Tensor:
    """A bool mask of exactly ``round(share · n)`` of ``n`` samples, the first ones of a seeded
    permutation (so a larger share contains a smaller one)."""
    order = torch.randperm(n, generator=seeded_generator(seed, zlib.crc32(name.encode())))
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[order[:round_half_up(share * n)]] = True
    return chosen


class Degradation:
    """Identity on both sides; subclasses change one."""

    def __init__(self, modality: str, seed: int, name: str) -> None:
        self.modality, self.seed, self.name = modality, seed, name

    def inputs(self, inputs: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        return inputs

    def embeddings(self, embeddings: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        return embeddings

    def per_sample(self, inputs: dict[str, Tensor], rows: Tensor, change: Callable[[Tensor, torch.Generator], Tensor]
                   ) -> dict[str, Tensor]:
        """The batch with ``change(x_i, generator_i)`` applied to each sample of the modality."""
        x = inputs[self.modality]
        changed = torch.stack([change(x[i], sample_generator(self.seed, self.name, int(row)))
                               for i, row in enumerate(rows.tolist())])
        return {**inputs, self.modality: changed}


class Missing(Degradation):
    """The modality is missing for exactly ``round(p · n)`` of the ``n`` test samples: its pooled
    embedding (what the fusion head and the unimodal heads read) is replaced by a zero vector."""

    def __init__(self, modality: str, share: float, n: int, seed: int, name: str) -> None:
        super().__init__(modality, seed, name)
        self.missing = sample_shares(n, share, seed, name)
        self.achieved = int(self.missing.sum()) / n if n else 0.0

    def embeddings(self, embeddings, rows):
        z = embeddings[self.modality]
        gone = self.missing[rows].to(z.device).unsqueeze(1)
        return {**embeddings, self.modality: torch.where(gone, torch.zeros_like(z), z)}


def add_noise_at_snr(x: Tensor, snr_db: float, generator: torch.Generator) -> Tensor:
    """``x + n`` with Gaussian ``n`` scaled so that ``10 log10(P_x / P_n) = snr_db`` exactly, where
    ``P_x`` is the variance of ``x`` about its mean (a log spectrogram's offset is not signal) and
    ``P_n`` the mean square of the drawn noise."""
    noise = torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
    signal_power = x.float().var(unbiased=False)
    scale = torch.sqrt(signal_power / (noise.float().pow(2).mean() * 10 ** (snr_db / 10)))
    return x + noise * scale.to(x.dtype)


class AudioNoise(Degradation):
    """Additive Gaussian noise on each audio input at a given signal-to-noise ratio (dB)."""

    def __init__(self, snr_db: float, seed: int, name: str) -> None:
        super().__init__("audio", seed, name)
        self.snr_db = self.achieved = snr_db

    def inputs(self, inputs, rows):
        return self.per_sample(inputs, rows, lambda x, g: add_noise_at_snr(x, self.snr_db, g))


def mask_band(x: Tensor, axis: int, share: float, generator: torch.Generator) -> Tensor:
    """SpecAugment-style mask: one contiguous band of ``round(share · L)`` of the ``L`` positions along
    ``axis`` (start uniform), set to the sample's mean (SpecAugment's mask value; its inputs have mean 0)."""
    length = x.shape[axis]
    width = min(round_half_up(share * length), length)
    start = int(torch.randint(length - width + 1, (), generator=generator))
    index = [slice(None)] * x.dim()
    index[axis] = slice(start, start + width)
    out = x.clone()
    out[tuple(index)] = x.mean()
    return out


class SpectrogramMask(Degradation):
    """A time or frequency mask of the audio input (SpecAugment, Park et al. 2019)."""

    def __init__(self, along: str, share: float, audio_axes: tuple[str, str], length: int, seed: int, name: str):
        super().__init__("audio", seed, name)
        self.axis = 1 + audio_axes.index(along)  # of one sample (1, A0, A1)
        self.share = share
        self.achieved = min(round_half_up(share * length), length) / length

    def inputs(self, inputs, rows):
        return self.per_sample(inputs, rows, lambda x, g: mask_band(x, self.axis, self.share, g))


def frames_to_drop(share: float, frames: int) -> int:
    """``round(share · T)`` frames, keeping at least one."""
    return min(round_half_up(share * frames), frames - 1)


class FrameDrop(Degradation):
    """Visual frame drop: ``k`` of a clip's ``T`` frames (chosen per sample) are removed before the
    encoder averages over frames, so the embedding pools the remaining ``T − k``."""

    def __init__(self, share: float, frames: int, seed: int, name: str) -> None:
        super().__init__("visual", seed, name)
        self.drop = frames_to_drop(share, frames)
        self.achieved = self.drop / frames

    def inputs(self, inputs, rows):
        x = inputs["visual"]
        frames = x.shape[1]
        kept = torch.stack([torch.randperm(frames, generator=sample_generator(self.seed, self.name, int(row)))
                            [self.drop:].sort().values for row in rows.tolist()]).to(x.device)
        return {**inputs, "visual": x[torch.arange(len(x), device=x.device).unsqueeze(1), kept]}


def cutout_box(height: int, width: int, area: float) -> tuple[int, int]:
    """The ``(h, w)`` of a near-square rectangle of ``area`` of an ``height × width`` frame."""
    h = min(round_half_up(height * math.sqrt(area)), height)
    w = min(round_half_up(area * height * width / h), width) if h else 0
    return h, w


def cut_out(x: Tensor, area: float, generator: torch.Generator) -> Tensor:
    """Zero one rectangle of ``area`` of the frame (uniform position inside it), in every channel and
    every frame of the clip (a static occluder). Zero is the mean of the normalized frames."""
    height, width = x.shape[-2:]
    h, w = cutout_box(height, width, area)
    top = int(torch.randint(height - h + 1, (), generator=generator))
    left = int(torch.randint(width - w + 1, (), generator=generator))
    out = x.clone()
    out[..., top:top + h, left:left + w] = 0
    return out


class Cutout(Degradation):
    """Cutout (DeVries & Taylor, 2017) of a random rectangle of the visual frame."""

    def __init__(self, area: float, frame: tuple[int, int], seed: int, name: str) -> None:
        super().__init__("visual", seed, name)
        self.area = area
        h, w = cutout_box(*frame, area)
        self.achieved = h * w / (frame[0] * frame[1])

    def inputs(self, inputs, rows):
        return self.per_sample(inputs, rows, lambda x, g: cut_out(x, self.area, g))


# --- the protocol ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitShape:
    """What the degradations need to know of the test split: its size, its dataset, one sample's shapes."""

    samples: int
    dataset: str
    shapes: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Family:
    """One panel of the figure: a degradation of one modality at several levels (``None``: clean)."""

    name: str
    title: str
    modality: str
    levels: tuple[float | None, ...]
    unit: str  # the x axis
    clean_level: float | None = 0.0  # the level that leaves the input as it is

    def clean(self, level: float | None) -> bool:
        return level == self.clean_level

    def skip_reason(self, split: SplitShape) -> str | None:
        """Why the family does not apply to this split (None: it does)."""
        if self.modality not in split.shapes:
            return f"the model has no {self.modality} input"
        if self.name in ("time_mask", "freq_mask") and split.dataset not in AUDIO_AXES:
            return f"the audio layout (which axis is time) of dataset {split.dataset!r} is not known"
        if self.name == "frame_drop" and frame_count(split.shapes["visual"]) < 2:
            return "the clips have one frame"
        return None

    def make(self, level: float, split: SplitShape, seed: int) -> Degradation:
        """The degradation at one (non-clean) level."""
        shape = split.shapes.get(self.modality, ())
        if self.name.startswith("missing_"):
            return Missing(self.modality, level, split.samples, seed, self.name)
        if self.name == "audio_noise":
            return AudioNoise(level, seed, self.name)
        if self.name in ("time_mask", "freq_mask"):
            axes = AUDIO_AXES[split.dataset]
            along = self.name.split("_")[0]
            return SpectrogramMask(along, level, axes, shape[1 + axes.index(along)], seed, self.name)
        if self.name == "frame_drop":
            return FrameDrop(level, frame_count(shape), seed, self.name)
        if self.name == "cutout":
            return Cutout(level, shape[-2:], seed, self.name)
        raise ValueError(f"unknown degradation {self.name!r}")


def frame_count(visual_shape: Sequence[int]) -> int:
    """Frames of one visual sample: (T, C, H, W) has T, (C, H, W) one."""
    return visual_shape[0] if len(visual_shape) == 4 else 1


def steps(stop: float, step: float) -> tuple[float, ...]:
    return tuple(round(i * step, 10) for i in range(round_half_up(stop / step) + 1))


# The paper's protocol (Appendix D.2): one modality at a time.
PROTOCOL: tuple[Family, ...] = (
    Family("missing_audio", "audio missing", "audio", steps(1.0, 0.1), "share of samples p"),
    Family("missing_visual", "visual missing", "visual", steps(1.0, 0.1), "share of samples p"),
    Family("audio_noise", "audio noise", "audio", (None, 20.0, 10.0, 0.0), "SNR (dB)", clean_level=None),
    Family("time_mask", "audio time mask", "audio", steps(0.5, 0.1), "share of time frames"),
    Family("freq_mask", "audio frequency mask", "audio", steps(0.5, 0.1), "share of frequency bins"),
    Family("frame_drop", "visual frame drop", "visual", (0.0, 0.25, 0.5, 0.75), "share of frames"),
    Family("cutout", "visual cutout", "visual", steps(0.5, 0.1), "share of frame area"),
)
