"""Tiny CREMA-D and Kinetics-Sounds trees in the real on-disk layouts, for tests and benchmarks.

The clips carry real names drawn (seeded) from the shipped split lists, so their labels follow
the lists; the media are short noisy tones and small coloured frames. Audio lengths differ
(1 to 2.5 s) so that tiling and padding matter, and videos last 2 to 3 s (2 or 3 frames at 1 fps).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import soundfile
import torch
from PIL import Image

from .cache import SPLITS_DIR, read_list_rows

WIDTH, HEIGHT, VIDEO_FPS, SOURCE_RATE = 64, 48, 10, 16000  # CREMA-D's wavs and KS audio are 16 kHz
FBANK_SHAPE = (1024, 128)


def write_cremad_fixture(root: Path, layout: str = "raw", clips_per_class: int = 2, seed: int = 0,
                         frame_size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    """A CREMA-D tree at ``root`` in ``layout`` (raw, ogm_ge, mmpareto); returns its split folder.

    ``frame_size`` (width, height): tiny for tests; CREMA-D's own 480×360 where decoding cost matters."""
    rng = np.random.default_rng(seed)
    lists = {split: pick_rows(read_list_rows(SPLITS_DIR / "cremad" / f"{split}.csv", 2), clips_per_class, rng)
             for split in ("train", "test")}
    classes = [row[0] for row in read_list_rows(SPLITS_DIR / "cremad" / "stat.csv", 1)]
    for i, (clip, label) in enumerate(row for rows in lists.values() for row in rows):
        write_cremad_clip(Path(root), layout, clip, classes.index(label), i, rng, frame_size)
    split_dir = Path(root) / "splits"
    for split, rows in lists.items():
        write_list(split_dir / f"{split}.csv", [",".join(row) for row in rows])
    write_list(split_dir / "stat.csv", classes)
    return split_dir


def write_ks_fixture(root: Path, layout: str = "raw", clips_per_class: int = 1, classes: int = 3,
                     seed: int = 0) -> Path:
    """A Kinetics-Sounds tree at ``root`` in ``layout`` (raw, gewu) with the first ``classes``
    labels; returns its split folder (with a classes.txt of those classes)."""
    rng = np.random.default_rng(seed)
    wanted = {str(c) for c in range(classes)}
    lists = {split: pick_rows([r for r in read_list_rows(SPLITS_DIR / "kinetics_sounds" / f"{split}.txt", 3)
                               if r[2] in wanted], clips_per_class, rng) for split in ("train", "test")}
    for i, (clip, _, label) in enumerate(row for rows in lists.values() for row in rows):
        write_ks_clip(Path(root), layout, clip, int(label), i, rng)
    split_dir = Path(root) / "splits"
    for split, rows in lists.items():
        write_list(split_dir / f"{split}.txt", [",".join(row) for row in rows])
    names = [row[0] for row in read_list_rows(SPLITS_DIR / "kinetics_sounds" / "classes.txt", 1)][:classes]
    write_list(split_dir / "classes.txt", names)
    return split_dir


def pick_rows(rows: list[list[str]], per_class: int, rng: np.random.Generator) -> list[list[str]]:
    """``per_class`` seeded rows of each label (the last field), in list order."""
    chosen = []
    for label in sorted({row[-1] for row in rows}):
        of_label = [i for i, row in enumerate(rows) if row[-1] == label]
        chosen += list(rng.choice(of_label, per_class, replace=False))
    return [rows[i] for i in sorted(chosen)]


def write_cremad_clip(root: Path, layout: str, clip: str, label: int, i: int, rng: np.random.Generator,
                      frame_size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    n_frames = 2 + i % 2
    if layout == "mmpareto":  # MMPareto's .pt audio is a Kinetics-style fbank
        torch.save(torch.from_numpy(fbank_like(rng)), parent_made(root / "audio" / f"{clip}.pt"))
        names = [f"frame_000{t:02d}.jpg" for t in range(1, n_frames + 1)]
        write_frames(root / "visual" / clip, names, label, rng, frame_size)
        return
    write_wav(root / "AudioWAV" / f"{clip}.wav", tone(label, rng))
    if layout == "raw":
        write_video(root / "VideoFlash" / f"{clip}.flv", "flv", "flv", n_frames, label, rng, size=frame_size)
    elif layout == "ogm_ge":  # OGM-GE's script names a kept frame by its index in the 30-fps video
        write_frames(root / "Image-01-FPS" / clip, [f"{t * 30:05d}.jpg" for t in range(n_frames)], label, rng,
                     frame_size)
    else:
        raise ValueError(f"unknown CREMA-D layout {layout!r}")


def write_ks_clip(root: Path, layout: str, clip: str, label: int, i: int, rng: np.random.Generator) -> None:
    if layout == "raw":  # audio inside the video; every other clip also has an extracted wav
        wave = tone(label, rng)
        write_video(root / "videos" / f"{clip}.mp4", "mp4", "mpeg4", 2 + i % 2, label, rng, audio=wave)
        if i % 2:
            write_wav(root / "audio" / f"{clip}.wav", wave)
    elif layout == "gewu":  # up to 10 frames, so that frame_000010 must sort after frame_00009
        n_frames = (3, 10, 4)[i % 3]
        write_frames(root / "visual" / clip, [f"frame_0000{t}.jpg" for t in range(1, n_frames + 1)], label, rng)
        fbank = fbank_like(rng)
        if i % 2:
            np.save(parent_made(root / "audio" / f"{clip}.npy"), fbank)
        else:
            parent_made(root / "audio_spec" / f"{clip}.pkl").write_bytes(pickle.dumps(fbank))
    else:
        raise ValueError(f"unknown Kinetics-Sounds layout {layout!r}")


def tone(label: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy tone of 1 to 2.5 s at a pitch of the class."""
    t = np.arange(int(rng.uniform(1.0, 2.5) * SOURCE_RATE)) / SOURCE_RATE
    wave = 0.3 * np.sin(2 * np.pi * 220.0 * (label + 1) * t) + 0.02 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def fbank_like(rng: np.random.Generator) -> np.ndarray:
    """A stand-in for a precomputed 1024×128 Kaldi fbank (its values are never checked)."""
    return rng.standard_normal(FBANK_SHAPE, dtype=np.float32)


def image(label: int, rng: np.random.Generator, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    colour = np.array([(label * 70) % 256, (label * 150) % 256, 255 - (label * 40) % 256])
    noise = rng.integers(-30, 30, (size[1], size[0], 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def write_frames(folder: Path, names: list[str], label: int, rng: np.random.Generator,
                 size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(image(label, rng, size)).save(folder / name, quality=80)


def write_video(path: Path, container_format: str, codec: str, seconds: int, label: int,
                rng: np.random.Generator, audio: np.ndarray | None = None,
                size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    with av.open(str(parent_made(path)), "w", format=container_format) as container:
        video = container.add_stream(codec, rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = container.add_stream("aac", rate=SOURCE_RATE, layout="mono") if audio is not None else None
        for _ in range(seconds * VIDEO_FPS):
            container.mux(video.encode(av.VideoFrame.from_ndarray(image(label, rng, size), format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            frame = av.AudioFrame.from_ndarray(audio[None], format="fltp", layout="mono")
            frame.sample_rate = SOURCE_RATE
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))


def write_wav(path: Path, wave: np.ndarray) -> None:
    soundfile.write(parent_made(path), wave, SOURCE_RATE, subtype="PCM_16")


def parent_made(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_list(path: Path, lines: list[str]) -> None:
    """A split list as the originals are written: UTF-8 BOM and CRLF line ends."""
    parent_made(path).write_bytes(("\ufeff" + "".join(f"{line}\r\n" for line in lines)).encode())
