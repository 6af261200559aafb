import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: skipped where there is none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def cpu_in_fp32(request, monkeypatch):
    """The suite is the CPU suite on any host: ``device: auto`` and ``precision: auto`` resolve to the CPU
    in fp32 (on a GPU they would mean bf16, where the tests' fp32 tolerances do not hold), in this process
    and in the processes a test starts. Tests marked ``gpu`` see the device."""
    if request.node.get_closest_marker("gpu"):
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def debug_raw():
    """A raw run mapping for a 2-epoch run on the debug dataset (resolve with resolve_run)."""
    return {
        "benchmark": "debug",
        "seed": 0,
        "data": {"name": "debug", "batch_size": 16},
        "model": {"encoder": "small_cnn", "width": 16},
        "optim": {"lr": 0.05, "epochs": 2, "scheduler": "none"},
        "method": {"name": "joint"},
    }


@pytest.fixture
def train_interrupted(monkeypatch):
    """``train_interrupted(cfg, run_dir, at_epoch=2)``: train until ``KeyboardInterrupt`` at the start of
    ``at_epoch`` (as Ctrl-C would stop it); returns the resume, ``resume()``, to call after any checks."""
    from benchmarks.train.trainer import Trainer

    original = Trainer.train_epoch

    def train(cfg, run_dir, at_epoch=2):
        def interrupt(self, epoch):
            if epoch == at_epoch:
                raise KeyboardInterrupt
            return original(self, epoch)

        monkeypatch.setattr(Trainer, "train_epoch", interrupt)
        with pytest.raises(KeyboardInterrupt):
            Trainer(cfg, run_dir).fit()
        monkeypatch.setattr(Trainer, "train_epoch", original)
        return lambda: Trainer(cfg, run_dir).fit()

    return train
