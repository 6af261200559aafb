import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


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
