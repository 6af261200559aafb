"""Decoding and features of the audio-visual benchmarks, following the field's preprocessing.

* CREMA-D audio: OGM-GE's ``CramedDataset`` (librosa STFT, log magnitude, 257×188).
* Kinetics-Sounds audio: GeWu's ``process_audio.py`` (Kaldi fbank, 1024×128, AudioSet statistics).
* Frames: OGM-GE's OpenCV script (the first frame of every second), then segment sampling with the
  frame-selection bug fixed (OGM-GE issue #32).
"""
from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path

import av
import numpy as np
import soundfile
import torch
import torchaudio
from PIL import Image
from torch import Tensor

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


class MediaWarning(UserWarning):
    """A clip that decodes but looks damaged or poorer than the pipeline expects (by file name)."""


def read_audio(path: str | Path, sample_rate: int, min_rate: int | None = None) -> Tensor:
    """Mono float32 waveform of an audio file or of a video's audio stream, at ``sample_rate``.

    Warns (:class:`MediaWarning`) when the decoded audio is shorter than its header says, and when
    the file's rate is below ``min_rate`` (default ``sample_rate``): upsampling adds no content."""
    path = Path(path)
    sound_file = path.suffix.lower() in AUDIO_SUFFIXES
    kind = "audio file" if sound_file else "video file (its audio stream)"
    try:
        wave, native_rate, declared_s = read_sound_file(path) if sound_file else read_container_audio(path)
    except (OSError, RuntimeError, av.FFmpegError) as err:  # soundfile raises LibsndfileError(RuntimeError)
        raise ValueError(f"unreadable {kind} {path}: {err}") from err
    if wave.numel() == 0:
        raise ValueError(f"{kind} {path} holds no samples")
    warn_if_truncated(path, "audio", wave.numel() / native_rate, declared_s)
    if native_rate < (min_rate or sample_rate):
        warnings.warn(f"{path}: audio sampled at {native_rate} Hz, below {min_rate or sample_rate} Hz; "
                      f"resampled up to {sample_rate} Hz, so its upper band is empty", MediaWarning, stacklevel=2)
    if native_rate != sample_rate:
        wave = torchaudio.functional.resample(wave, native_rate, sample_rate)
    return wave


def warn_if_truncated(path: Path, what: str, decoded_s: float, declared_s: float | None) -> None:
    """A decoded length well short of the header's (more than 0.2 s and 5%) means a cut-off file."""
    if declared_s is not None and decoded_s < declared_s - max(0.2, 0.05 * declared_s):
        warnings.warn(f"{path}: {what} decodes to {decoded_s:.2f} s but the file's header says {declared_s:.2f} s "
                      "(truncated file?)", MediaWarning, stacklevel=2)


def read_sound_file(path: Path) -> tuple[Tensor, int, float | None]:
    """Waveform, rate and the duration the header declares (``None`` where it declares none)."""
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if path.suffix.lower() == ".wav":
        declared = declared_wav_seconds(path)  # libsndfile reports the frames present, not the header's
    else:
        declared = soundfile.info(path).duration
    return torch.from_numpy(data.mean(axis=1)), rate, declared  # mono as librosa.load: the channels' mean


def declared_wav_seconds(path: Path) -> float | None:
    """The length a RIFF/WAVE header gives its ``data`` chunk, in seconds (``None`` if unset or unknown)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        rate = block_align = None
        while len(chunk := f.read(8)) == 8:
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                unset = size in (0, 0xFFFFFFFF)  # streamed writers fill the size in later, or never
                return None if unset or not (rate and block_align) else size // block_align / rate
            body = f.read(size + size % 2)
            if name == b"fmt " and len(body) >= 14:
                rate, block_align = int.from_bytes(body[4:8], "little"), int.from_bytes(body[12:14], "little")
    return None


def read_container_audio(path: Path) -> tuple[Tensor, int, float | None]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"video file {path} has no audio stream")
        stream = container.streams.audio[0]
        planar = av.AudioResampler(format="fltp")  # keeps rate and layout; one row per channel
        chunks = [frame.to_ndarray() for decoded in container.decode(stream)
                  for frame in planar.resample(decoded)]
        chunks += [frame.to_ndarray() for frame in planar.resample(None)]
        rate = stream.rate
        declared = float(stream.duration * stream.time_base) if stream.duration else None
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)
    return torch.from_numpy(samples.mean(axis=0)), rate, declared


def cremad_spectrogram(wave: Tensor, sample_rate: int = 22050, seconds: float = 3.0, n_fft: int = 512,
                       hop_length: int = 353) -> Tensor:
    """OGM-GE's CREMA-D audio input: log-magnitude STFT of the clip tiled to ``seconds`` (F×T).

    OGM-GE tiles the waveform ×3 and cuts 3 s; tiling as often as needed gives the same samples
    whenever ×3 suffices and keeps the shape for clips under 1 s.
    """
    length = round(seconds * sample_rate)
    tiled = wave.repeat(math.ceil(length / len(wave)))[:length].clamp(-1.0, 1.0)
    # librosa.stft(center=True): periodic Hann window and, since librosa 0.10, zero ("constant")
    # padding of n_fft // 2 on both sides; earlier librosa reflected (the difference is in the
    # first and last frame only).
    spec = torch.stft(tiled, n_fft, hop_length=hop_length, window=torch.hann_window(n_fft),
                      center=True, pad_mode="constant", return_complex=True)
    return torch.log(spec.abs() + 1e-7)


def kinetics_fbank(wave: Tensor, sample_rate: int = 16000, num_mel_bins: int = 128, target_frames: int = 1024,
                   norm_mean: float = -4.503877, norm_std: float = 5.141276) -> Tensor:
    """GeWu's Kinetics-Sounds audio input (AST-style): Kaldi fbank, padded or cut, normalised (T×F)."""
    fbank = torchaudio.compliance.kaldi.fbank(
        (wave - wave.mean()).unsqueeze(0), htk_compat=True, sample_frequency=sample_rate, use_energy=False,
        window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0, frame_shift=10)
    fbank = torch.nn.functional.pad(fbank, (0, 0, 0, max(0, target_frames - len(fbank))))[:target_frames]
    return (fbank - norm_mean) / (2 * norm_std)


def decode_video_frames(path: str | Path, fps: float = 1.0) -> list[np.ndarray]:
    """RGB frames (H×W×3 uint8) kept as OGM-GE's OpenCV script keeps them: with the integer frame
    rate ``r``, ``fps`` frames in every block of ``r`` frames, ``int(r / fps)`` apart (for ``fps=1``
    the first frame of every second). Warns when the video is shorter than its header says."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = max(1, int(stream.average_rate or stream.guessed_rate or 1))
            interval = max(1, int(rate / fps))
            frames, times = [], []
            for i, frame in enumerate(container.decode(stream)):
                times.append(frame.time if frame.time is not None else i / rate)
                if i % rate < interval * fps and i % rate % interval == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
            declared = (float(stream.duration * stream.time_base) if stream.duration  # the video's own
                        else container.duration / av.time_base if container.duration else None)
    except (OSError, IndexError, av.FFmpegError) as err:
        raise ValueError(f"unreadable video file {path}: {err}") from err
    if not frames:
        raise ValueError(f"video file {path} has no decodable frames")
    warn_if_truncated(path, "video", times[-1] - times[0] + 1 / rate, declared)
    return frames


def read_feature_file(path: str | Path) -> np.ndarray:
    """A precomputed audio feature (``.pt`` tensor, ``.npy`` or pickled array) as float32, without
    its singleton dimensions."""
    path = Path(path)
    try:
        if path.suffix == ".pt":
            data = torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            with open(path, "rb") as f:
                data = pickle.load(f)  # the user's own preprocessed file, as GeWu's loaders read it
        return np.squeeze(np.asarray(data, dtype=np.float32))
    except (OSError, ValueError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"unreadable audio feature file {path}: {err}") from err


def read_image(path: str | Path) -> Tensor:
    """A JPEG/PNG frame as a 3×H×W uint8 tensor (PIL: torchvision's image decoding is deprecated)."""
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))
    except OSError as err:  # also PIL's UnidentifiedImageError and truncated files
        raise ValueError(f"unreadable image file {path}: {err}") from err
    return torch.from_numpy(pixels).permute(2, 0, 1)


def sample_frame_indices(n_frames: int, k: int, train: bool, generator: torch.Generator | None) -> list[int]:
    """``k`` frame indices into the sorted frames of a clip, one per equal segment.

    Training draws a uniform index inside each segment; evaluation takes each segment's centre
    (``start + length // 2``, as MMPareto). With fewer frames than ``k``, segment ``i`` is the single
    frame ``floor(i · n / k)``: frames repeat in order, evenly spread.
    """
    if n_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and one segment, got n_frames={n_frames}, k={k}")
    indices = []
    for i in range(k):
        start = i * n_frames // k
        length = max(1, (i + 1) * n_frames // k - start)
        offset = (int(torch.randint(length, (), generator=generator)) if train else length // 2)
        indices.append(start + offset)
    return indices
