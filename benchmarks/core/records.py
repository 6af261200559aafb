"""Run directories, atomic writes and provenance.

A run directory holds ``config.yaml`` (resolved config), ``metrics.jsonl`` (one line per epoch),
``last.pt`` (resume state), ``best.pt`` (selected model), ``test_predictions.npz`` (per-sample test
predictions of every epoch, ``benchmarks.train.evaluation.PredictionLog``), ``final.json`` and the ``done``
marker, or ``failed.json`` when the run stopped on an error.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import allocator
from .numerics import hardware_record

GRID_TIME = "grid_time.json"  # in results/<grid>/: the last complete training of the grid (``reproduce``)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.jsonl"
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.test_predictions = self.path / "test_predictions.npz"
        self.final = self.path / "final.json"
        self.failed = self.path / "failed.json"
        self.done = self.path / "done"

    def is_done(self) -> bool:
        return self.done.exists()

    def test_samples(self) -> int | None:
        """Samples in the test split, from the run's kept predictions (None before any evaluation)."""
        return test_samples_in(self.test_predictions) if self.test_predictions.exists() else None

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the whole log atomically (it is small): a crash never leaves a torn line."""
        atomic_write_text(self.metrics, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def test_samples_in(predictions: Path) -> int:
    """Samples in the test split of a run's ``test_predictions.npz``."""
    with np.load(predictions, allow_pickle=False) as kept:
        return len(kept["labels"])


def git_commit() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def environment(device: torch.device) -> dict[str, Any]:
    import numpy
    import torchvision

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "hardware": hardware_record(),
        "malloc": allocator.current_mode(),
    }
    try:
        import torchaudio

        env["torchaudio"] = torchaudio.__version__
    except (ImportError, OSError):
        env["torchaudio"] = None
    return env


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
