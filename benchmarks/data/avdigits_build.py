"""Build AV-Digits: real handwritten digits (visual) + espeak-ng spoken digits (audio).

The default benchmark must run without any download, so the features are committed
as ``avdigits.npz``; this script is the exact, seeded recipe that regenerates them
from two Debian packages (see AVDIGITS.md).

    python -m benchmarks.data.avdigits_build --out benchmarks/data/avdigits.npz
    python -m benchmarks.data.avdigits_build --check   # rebuild, compare content hash

Needs apt-get/dpkg-deb (Debian bookworm sources), torch, torchaudio, numpy,
soundfile and pillow.  Nothing is installed system-wide: the .debs are fetched
with ``apt-get download`` and unpacked into a temporary directory.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SEED = 20240601
DATASET = "AV-Digits"
VERSION = "1"
DEFAULT_OUT = Path(__file__).with_name("avdigits.npz")
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# Exact versions the committed file was built from (Debian 12 "bookworm").
PINNED = {
    "opencv-doc": "4.6.0+dfsg-12",
    "espeak-ng": "1.51+dfsg-10+deb12u2",
    "espeak-ng-data": "1.51+dfsg-10+deb12u2",
    "libespeak-ng1": "1.51+dfsg-10+deb12u2",
    "libpcaudio0": "1.2-2",
    "libsonic0": "0.2.0-12",
}
LICENSES = {
    "opencv-doc": "Apache-2.0 AND BSD-3-Clause",
    "espeak-ng": "GPL-3+",
    "espeak-ng-data": "GPL-3+",
    "libespeak-ng1": "GPL-3+",
    "libpcaudio0": "GPL-3+",
    "libsonic0": "Apache-2.0",
}
DIGITS_PNG = "usr/share/doc/opencv-doc/examples/data/digits.png"

# Visual: digits.png is 50 rows x 100 columns of 20x20 tiles; 5 rows per class.
TILE, GRID_ROWS, GRID_COLS, N_PER_CLASS = 20, 50, 100, 500

# Audio: the non-MBROLA English accents of espeak-ng 1.51 (`--voices=en`) and 32
# voice variants (from espeak-ng-data/voices/!v) chosen to span male, female,
# Klatt-synthesis, whispered and character voices.
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
            "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4", "klatt5",
            "whisper", "whisperf", "croak",
            "Andy", "Annie", "anika", "aunty", "belinda", "edward",
            "grandma", "grandpa", "linda", "robosoft", "steph"]
RATE_RANGE = (120, 220)   # espeak -s, words per minute, inclusive
PITCH_RANGE = (20, 80)    # espeak -p, 0..99, inclusive
SR_TTS, SR = 22050, 16000
CLIP_S = 1.0
TRIM_REL = 0.01           # trim leading/trailing samples below 1% of the clip peak
N_FFT, HOP, N_MELS, F_MIN, F_MAX = 512, 320, 40, 0.0, 8000.0
LOG_EPS = 1e-6
Q_PCT = (0.1, 99.9)       # global percentiles mapped to uint8 0 and 255
TEST_PER_CLASS = 100      # -> 400 train + 100 test per class

# Order of arrays in the content hash (everything but `meta`).
HASH_KEYS = ["visual", "audio", "label", "split", "accent_id", "variant_id", "rate", "pitch"]


def content_sha256(arrays: dict) -> str:
    """Hash of the data arrays (name, dtype, shape, C-order bytes), independent of zip timestamps."""
    h = hashlib.sha256()
    for k in HASH_KEYS:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- packages
def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _runtime_closure() -> list[str]:
    """Packages apt would add to run espeak-ng on this host (libpulse0, libsndfile1, ...)."""
    out = _run(["apt-get", "install", "-s", "--no-install-recommends", "espeak-ng"]).stdout
    return [ln.split()[1] for ln in out.splitlines() if ln.startswith("Inst ")]


def fetch_packages(workdir: Path, pinned: bool) -> dict:
    """apt-get download the sources and the espeak-ng runtime closure; return {pkg: version}."""
    dl = workdir / "debs"
    dl.mkdir()
    os.chmod(dl, 0o777)  # apt's sandbox user must be able to write here
    specs = [f"{p}={v}" if pinned else p for p, v in PINNED.items()]
    extra = [p for p in _runtime_closure() if p not in PINNED]

    def download():
        return subprocess.run(["apt-get", "download", *specs, *extra], cwd=dl,
                              capture_output=True, text=True)

    r = download()
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        r = download()
    if r.returncode != 0:
        hint = "" if not pinned else " (pinned versions may have left the mirror; try --unpinned)"
        sys.exit(f"apt-get download failed{hint}:\n{r.stderr}")
    versions = {}
    for deb in sorted(dl.glob("*.deb")):
        pkg = _run(["dpkg-deb", "-f", str(deb), "Package"]).stdout.strip()
        versions[pkg] = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    return versions


def extract(workdir: Path) -> tuple[Path, Path]:
    """Unpack espeak-ng and its libraries; pull only digits.png out of the 96 MB opencv-doc."""
    root = workdir / "root"
    for deb in sorted((workdir / "debs").glob("*.deb")):
        if deb.name.startswith("opencv-doc_"):
            p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
                for m in tf:
                    if m.name.lstrip("./") == DIGITS_PNG:
                        png = workdir / "digits.png"
                        png.write_bytes(tf.extractfile(m).read())
                        break
            p.stdout.close()
            p.wait()  # may report SIGPIPE: we stop reading after the one member
            if not (workdir / "digits.png").is_file():
                sys.exit(f"{DIGITS_PNG} not found in {deb.name}")
        else:
            _run(["dpkg", "-x", str(deb), str(root)])
    return workdir / "digits.png", root


# ----------------------------------------------------------------------------- visual
def load_digits(png: Path) -> tuple[np.ndarray, np.ndarray]:
    """5,000 20x20 uint8 tiles in row-major tile order; class c is tiles 500c..500c+499."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"))
    assert img.shape == (GRID_ROWS * TILE, GRID_COLS * TILE), img.shape
    tiles = img.reshape(GRID_ROWS, TILE, GRID_COLS, TILE).transpose(0, 2, 1, 3)
    tiles = tiles.reshape(-1, TILE, TILE).astype(np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.int64), N_PER_CLASS)
    return tiles, labels


# ----------------------------------------------------------------------------- audio
class Espeak:
    """The extracted espeak-ng binary, run with its unpacked libraries and data."""

    def __init__(self, root: Path):
        lib = root / "usr/lib/x86_64-linux-gnu"
        if not lib.is_dir():  # other architectures
            lib = next((root / "usr/lib").glob("*-linux-gnu*"))
        self.exe = str(root / "usr/bin/espeak-ng")
        self.data_parent = str(lib)  # --path wants the parent of espeak-ng-data/
        ld = [str(lib), str(lib / "pulseaudio"), os.environ.get("LD_LIBRARY_PATH", "")]
        self.env = dict(os.environ, LD_LIBRARY_PATH=":".join(p for p in ld if p))

    def version(self) -> str:
        return _run([self.exe, "--version"], env=self.env).stdout.split("Data at")[0].strip()

    def synth(self, word: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """One utterance as int16 at 22.05 kHz (wav via --stdout, no temp files)."""
        import soundfile as sf

        r = subprocess.run([self.exe, f"--path={self.data_parent}", "-v", voice, "-s", str(rate),
                            "-p", str(pitch), "--stdout", word], env=self.env, capture_output=True)
        if r.returncode != 0 or not r.stdout:
            raise RuntimeError(f"espeak-ng failed for {voice!r}: {r.stderr.decode()[:500]}")
        x, sr = sf.read(io.BytesIO(r.stdout), dtype="int16")
        assert sr == SR_TTS, sr
        return x


def trim_center(x: np.ndarray, n: int) -> np.ndarray:
    """Drop espeak's silent head/tail, then center-pad/crop so every word sits mid-clip."""
    mag = np.abs(x.astype(np.int32))
    idx = np.flatnonzero(mag >= TRIM_REL * max(int(mag.max()), 1))
    x = x[idx[0]: idx[-1] + 1] if idx.size else x
    if len(x) >= n:
        s = (len(x) - n) // 2
        return x[s: s + n]
    out = np.zeros(n, x.dtype)
    s = (n - len(x)) // 2
    out[s: s + len(x)] = x
    return out


def log_mel(wavs: np.ndarray, chunk: int = 500) -> np.ndarray:
    """(N, SR_TTS) int16 -> (N, N_MELS, T) float64 log-mel at 16 kHz.

    float64 and one thread so that the later uint8 rounding does not depend on the BLAS/FFT
    code path; chunked to bound memory.
    """
    import torch
    import torchaudio

    torch.set_num_threads(1)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, f_min=F_MIN, f_max=F_MAX,
        power=2.0).to(torch.float64)
    out = []
    for s in range(0, len(wavs), chunk):
        x = torch.from_numpy(wavs[s: s + chunk].astype(np.float64) / 32768.0)
        x = torchaudio.functional.resample(x, SR_TTS, SR)
        assert x.shape[-1] == int(CLIP_S * SR), x.shape
        out.append(torch.log(mel(x) + LOG_EPS).numpy())
    return np.concatenate(out)


def quantize(feat: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Global affine uint8 map; the loader dequantizes with x = q * scale + offset."""
    lo, hi = (float(v) for v in np.percentile(feat, Q_PCT))
    scale = (hi - lo) / 255.0
    q = np.rint((np.clip(feat, lo, hi) - lo) / scale).astype(np.uint8)
    return q, scale, lo


# ----------------------------------------------------------------------------- build
def build(pinned: bool = True, workers: int | None = None, verbose: bool = True) -> dict:
    t0 = time.time()
    say = print if verbose else (lambda *a, **k: None)
    with tempfile.TemporaryDirectory(prefix="avdigits_") as tmp:
        tmp = Path(tmp)
        versions = fetch_packages(tmp, pinned)
        say(f"[{time.time() - t0:5.1f}s] downloaded {len(versions)} packages")
        png, root = extract(tmp)
        visual, label = load_digits(png)
        n = len(label)

        rng = np.random.default_rng(SEED)
        accent_id = rng.integers(0, len(ACCENTS), n).astype(np.uint8)
        variant_id = rng.integers(0, len(VARIANTS), n).astype(np.uint8)
        rate = rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1, n).astype(np.uint8)
        pitch = rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1, n).astype(np.uint8)
        split = np.zeros(n, np.uint8)
        for c in range(10):
            idx = np.flatnonzero(label == c)
            split[rng.permutation(idx)[:TEST_PER_CLASS]] = 1

        es = Espeak(root)
        espeak_version = es.version()
        n_tts = int(CLIP_S * SR_TTS)

        def job(i):
            voice = f"{ACCENTS[accent_id[i]]}+{VARIANTS[variant_id[i]]}"
            x = es.synth(CLASS_NAMES[label[i]], voice, int(rate[i]), int(pitch[i]))
            return trim_center(x, n_tts)

        with ThreadPoolExecutor(workers or os.cpu_count() or 2) as ex:
            wavs = np.stack(list(ex.map(job, range(n))))
    say(f"[{time.time() - t0:5.1f}s] synthesized {n} utterances ({espeak_version})")

    feat = log_mel(wavs)
    audio, scale, offset = quantize(feat)
    say(f"[{time.time() - t0:5.1f}s] log-mel {feat.shape[1:]} quantized")

    arrays = dict(visual=visual, audio=audio, label=label, split=split,
                  accent_id=accent_id, variant_id=variant_id, rate=rate, pitch=pitch)
    import torch
    import torchaudio
    meta = {
        "dataset": DATASET,
        "version": VERSION,
        "n": n,
        "class_names": CLASS_NAMES,
        "pairing": "visual[i] and audio[i] share label[i]; audio[i] is a fresh utterance of that label's word",
        "split": {"codes": {"train": 0, "test": 1}, "test_per_class": TEST_PER_CLASS,
                  "train_per_class": N_PER_CLASS - TEST_PER_CLASS},
        "sources": [
            {"package": p, "version": versions.get(p), "license": LICENSES[p],
             "use": "examples/data/digits.png" if p == "opencv-doc" else "speech synthesis"}
            for p in PINNED],
        "espeak_ng_version": espeak_version,
        "params": {
            "seed": SEED, "tile": TILE, "grid": [GRID_ROWS, GRID_COLS], "n_per_class": N_PER_CLASS,
            "accents": ACCENTS, "variants": VARIANTS, "rate_range": list(RATE_RANGE),
            "pitch_range": list(PITCH_RANGE), "sr_tts": SR_TTS, "clip_seconds": CLIP_S,
            "trim_rel": TRIM_REL, "n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS,
            "f_min": F_MIN, "f_max": F_MAX, "power": 2.0, "log_eps": LOG_EPS,
            "quant_percentiles": list(Q_PCT)},
        "sample_rate": SR,
        "audio_shape": list(audio.shape[1:]),
        "audio_scale": scale,
        "audio_offset": offset,
        "audio_dequant": "x = q * audio_scale + audio_offset  (natural-log mel power)",
        "hash_keys": HASH_KEYS,
        "content_sha256": content_sha256(arrays),
        "built_with": {"numpy": np.__version__, "torch": torch.__version__,
                       "torchaudio": torchaudio.__version__},
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    say(f"[{time.time() - t0:5.1f}s] done")
    return arrays


def save(arrays: dict, out: Path) -> Path:
    """An .npz (zip of .npy files) with LZMA compression: 4.2 MB instead of savez_compressed's 5.3 MB,
    and np.load reads it unchanged (zipfile decompresses LZMA itself)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".partial.npz")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            zf.writestr(f"{key}.npy", buf.getvalue())
    os.replace(tmp, out)
    return out


def load_meta(path: Path) -> tuple[dict, dict]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def summary(path: Path, wall: float) -> None:
    arrays, meta = load_meta(path)
    print(f"{meta['dataset']} v{meta['version']}: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for k, a in arrays.items():
        print(f"  {k:10s} {a.dtype!s:6s} {a.shape}")
    tr = np.bincount(arrays["label"][arrays["split"] == 0], minlength=10)
    te = np.bincount(arrays["label"][arrays["split"] == 1], minlength=10)
    print(f"  train per class {tr.tolist()}\n  test  per class {te.tolist()}")
    print(f"  audio_scale={meta['audio_scale']:.6g} audio_offset={meta['audio_offset']:.6g}")
    print(f"  content_sha256={meta['content_sha256']}  wall={wall:.1f}s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temp file and compare the content hash with --out")
    ap.add_argument("--unpinned", action="store_true",
                    help="take whatever package versions the mirror has (may change the data)")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    t0 = time.time()
    arrays = build(pinned=not args.unpinned, workers=args.workers)
    if args.check:
        committed, meta = load_meta(args.out)
        want, stored = content_sha256(committed), meta["content_sha256"]
        with tempfile.TemporaryDirectory() as tmp:
            rebuilt, _ = load_meta(save(arrays, Path(tmp) / "avdigits.npz"))
        got = content_sha256(rebuilt)
        ok = want == stored == got
        print(f"committed {want}\nstored    {stored}\nrebuilt   {got}\n{'OK' if ok else 'MISMATCH'}")
        return 0 if ok else 1
    save(arrays, args.out)
    summary(args.out, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
