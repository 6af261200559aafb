"""Fast checks of the committed AV-Digits feature file (no rebuild, no apt)."""
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.data.avdigits_build import HASH_KEYS, content_sha256

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "avdigits.npz"
N, N_CLASSES = 5000, 10


@pytest.fixture(scope="module")
def data():
    assert PATH.is_file(), f"missing {PATH}"
    with np.load(PATH) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    return arrays, meta


def test_size_limit():
    assert PATH.stat().st_size <= 10 * 1024 * 1024


def test_schema(data):
    arrays, meta = data
    assert set(arrays) == set(HASH_KEYS)
    n_mels, t = meta["audio_shape"]
    expect = {
        "visual": (np.uint8, (N, 20, 20)),
        "audio": (np.uint8, (N, n_mels, t)),
        "label": (np.int64, (N,)),
        "split": (np.uint8, (N,)),
        "accent_id": (np.uint8, (N,)),
        "variant_id": (np.uint8, (N,)),
        "rate": (np.uint8, (N,)),
        "pitch": (np.uint8, (N,)),
    }
    for k, (dtype, shape) in expect.items():
        assert arrays[k].dtype == dtype, k
        assert arrays[k].shape == shape, k
    assert (n_mels, t) == (meta["params"]["n_mels"], 51)


def test_metadata(data):
    _, meta = data
    assert meta["dataset"] == "AV-Digits" and meta["version"] == "1"
    assert meta["n"] == N and len(meta["class_names"]) == N_CLASSES
    assert meta["sample_rate"] == 16000
    assert meta["audio_scale"] > 0 and np.isfinite(meta["audio_offset"])
    pkgs = {s["package"]: s for s in meta["sources"]}
    assert {"opencv-doc", "espeak-ng", "espeak-ng-data", "libespeak-ng1"} <= set(pkgs)
    assert all(s["version"] and s["license"] for s in meta["sources"])
    for key in ("seed", "accents", "variants", "rate_range", "pitch_range", "n_fft",
                "hop_length", "quant_percentiles"):
        assert key in meta["params"], key


def test_splits_balanced(data):
    arrays, meta = data
    label, split = arrays["label"], arrays["split"]
    assert set(np.unique(split)) == {0, 1}
    assert (np.bincount(label[split == 0], minlength=N_CLASSES) == 400).all()
    assert (np.bincount(label[split == 1], minlength=N_CLASSES) == 100).all()
    assert meta["split"]["codes"] == {"train": 0, "test": 1}


def test_value_ranges(data):
    arrays, meta = data
    p = meta["params"]
    assert arrays["label"].min() == 0 and arrays["label"].max() == N_CLASSES - 1
    assert arrays["accent_id"].max() < len(p["accents"])
    assert arrays["variant_id"].max() < len(p["variants"])
    assert p["rate_range"][0] <= arrays["rate"].min() and arrays["rate"].max() <= p["rate_range"][1]
    assert p["pitch_range"][0] <= arrays["pitch"].min() and arrays["pitch"].max() <= p["pitch_range"][1]
    # both extremes of the uint8 range are used (global percentile clipping)
    a = arrays["audio"]
    assert a.min() == 0 and a.max() == 255
    assert arrays["visual"].max() > 200
    # dequantized audio is a natural-log mel power spectrum
    x = a.astype(np.float64) * meta["audio_scale"] + meta["audio_offset"]
    assert np.log(p["log_eps"]) - 1e-6 <= x.min() and x.max() < 20
    # every clip has speech in it (not all silence)
    assert (a.reshape(N, -1).max(1) > 0).all()


def test_content_hash(data):
    arrays, meta = data
    assert meta["hash_keys"] == HASH_KEYS
    assert content_sha256(arrays) == meta["content_sha256"]
