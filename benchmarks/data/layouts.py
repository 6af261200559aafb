"""Where the source files of each clip lie, in the folder layouts users already have.

A layout is recognised by marker folders under the dataset root. ``layout: auto`` takes the first
layout of the list whose markers exist, so already extracted frames (the field's exact inputs) win
over raw videos when a root holds both.
"""
from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png"}


class MissingClipError(FileNotFoundError):
    """A listed clip has no audio or no visual source in the root."""


@dataclass(frozen=True)
class ClipSources:
    audio: Path  # a waveform (audio file or video container), or a precomputed feature file
    visual: Path  # a video file, or a folder of frame images
    audio_is_feature: bool
    visual_is_video: bool


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    markers: tuple[str, ...]  # folders under the root that identify the layout
    audio: tuple[str, ...]  # path templates relative to the root, the first existing one is used
    visual: str  # path template of a video file or of a frame folder
    audio_is_feature: bool = False

    @property
    def visual_is_video(self) -> bool:
        return Path(self.visual).suffix != ""

    def detect(self, root: Path) -> bool:
        return all((root / marker).is_dir() for marker in self.markers)

    def example(self) -> str:
        audio = " or ".join(f"<root>/{t}" for t in self.audio)
        visual = f"<root>/{self.visual}" + ("" if self.visual_is_video else "/*.jpg")
        return f"{self.name} ({self.description}): {audio} + {visual}"

    def sources(self, root: Path, clip: str) -> ClipSources:
        audio_options = [root / template.format(clip=clip) for template in self.audio]
        audio = next((path for path in audio_options if path.exists()), None)
        visual = root / self.visual.format(clip=clip)
        if audio is None or not visual.exists():
            raise MissingClipError(self.missing_message(audio_options, visual, audio is None, not visual.exists()))
        return ClipSources(audio, visual, self.audio_is_feature, self.visual_is_video)

    def missing_message(self, audio_options: list[Path], visual: Path, no_audio: bool, no_visual: bool) -> str:
        """Which of audio and visual is missing, each file named once."""
        visual_kind = "video" if self.visual_is_video else "frame folder"
        if no_audio and no_visual and visual in audio_options:  # one video holds both
            others = [str(p) for p in audio_options if p != visual]
            return (f"missing audio and video: {visual}"
                    + (f" (the audio may also come from {' or '.join(others)})" if others else ""))
        parts = [f"audio ({' or '.join(map(str, audio_options))})"] if no_audio else []
        parts += [f"{visual_kind} ({visual})"] if no_visual else []
        return "missing " + " and ".join(parts)


CREMAD_LAYOUTS = (
    Layout("ogm_ge", "OGM-GE / DGL preprocessed, 1-fps frames named {index:05d}.jpg",
           ("AudioWAV", "Image-01-FPS"), ("AudioWAV/{clip}.wav",), "Image-01-FPS/{clip}"),
    Layout("raw", "the CREMA-D download", ("AudioWAV", "VideoFlash"),
           ("AudioWAV/{clip}.wav",), "VideoFlash/{clip}.flv"),
    Layout("mmpareto", "MMPareto / BalanceBenchmark, precomputed audio features read as they are",
           ("audio", "visual"), ("audio/{clip}.pt", "audio/{clip}.npy", "audio/{clip}.pkl"),
           "visual/{clip}", audio_is_feature=True),
)

KS_LAYOUTS = (
    Layout("gewu", "GeWu-Lab preprocessed, precomputed 1024x128 fbank read as it is", ("visual",),
           ("audio_spec/{clip}.pkl", "audio/{clip}.npy"), "visual/{clip}", audio_is_feature=True),
    # The audio of a raw clip is its own wav when one was extracted, else the video's audio stream.
    Layout("raw", "downloaded clips, audio from the video unless a wav was extracted", ("videos",),
           ("audio/{clip}.wav", "videos/{clip}.mp4"), "videos/{clip}.mp4"),
)


def expected_layouts(layouts: tuple[Layout, ...]) -> str:
    return "\n".join(f"  - {layout.example()}" for layout in layouts)


def resolve_layout(layouts: tuple[Layout, ...], root: Path, requested: str, dataset: str) -> Layout:
    """The layout named ``requested`` (checked against its marker folders), or the detected one for 'auto'."""
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} root {root} does not exist; accepted layouts:\n"
                                f"{expected_layouts(layouts)}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"the {dataset} folder is not readable", str(root))
    candidates = [layout for layout in layouts if requested in ("auto", layout.name)]
    found = next((layout for layout in candidates if layout.detect(root)), None)
    if found is None:
        wanted = "any accepted layout" if requested == "auto" else f"layout {requested!r}"
        raise FileNotFoundError(f"{dataset} root {root} does not match {wanted}; expected:\n"
                                f"{expected_layouts(candidates)}")
    return found


def frame_files(folder: Path) -> list[Path]:
    """The frame images of a clip folder in frame order: names sorted by their numbers, so that
    GeWu's unpadded ``frame_0000{t}.jpg`` puts frame 10 after frame 9."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
