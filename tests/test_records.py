"""Run records: atomic writes (a write that fails, or is interrupted, leaves the old file whole and no
temporary file) and what a run directory tells of its run."""
import os

import numpy as np
import pytest
import torch

from benchmarks.core import records
from benchmarks.core.records import RunDir, atomic_torch_save, atomic_write_json, atomic_write_text


def fail_with(error):
    def fail(*args, **kwargs):
        raise error

    return fail


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "ctrl-c"])
def test_a_failed_text_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, error):
    path = tmp_path / "final.json"
    atomic_write_json(path, {"old": 1})
    monkeypatch.setattr(records.os, "fsync", fail_with(error))
    with pytest.raises(type(error)):
        atomic_write_text(path, "new")
    assert path.read_text() == '{\n  "old": 1\n}\n' and os.listdir(tmp_path) == ["final.json"]


def test_a_failed_torch_save_keeps_the_old_checkpoint_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 0}, path)
    monkeypatch.setattr(records.torch, "save", fail_with(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        atomic_torch_save({"epoch": 1}, path)
    assert torch.load(path, weights_only=False) == {"epoch": 0} and os.listdir(tmp_path) == ["last.pt"]


def test_a_failed_metrics_write_keeps_every_earlier_line(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.write_metrics([{"epoch": 0}])
    monkeypatch.setattr(records.os, "fsync", fail_with(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        run.write_metrics([{"epoch": 0}, {"epoch": 1}])
    assert run.read_metrics() == [{"epoch": 0}] and os.listdir(tmp_path) == ["metrics.jsonl"]


def test_test_samples_counts_the_kept_labels_and_is_none_before_any_evaluation(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    assert run.test_samples() is None
    np.savez(run.test_predictions, labels=np.arange(7), epochs=np.array([0, 1]))
    assert run.test_samples() == 7
