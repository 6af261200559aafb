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
