"""The cache of CREMA-D and Kinetics-Sounds as the data changes under it: invalidation, --force,
partial folders of killed prepares, shared permissions, and media that decode but look wrong."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import soundfile

from benchmarks.__main__ import main
from benchmarks.data import cache as cache_module
from benchmarks.data.cache import ensure_cache, prepare
from benchmarks.data.check import data_check
from benchmarks.data.cremad import CremaD
from benchmarks.data.fixtures import write_cremad_fixture, write_ks_fixture
from benchmarks.data.staging import LOCK, remove_stale_temps

REPO = Path(__file__).resolve().parent.parent
SMALL = 16


def cremad_tree(tmp_path: Path, layout: str = "ogm_ge", **kwargs) -> dict:
    root = tmp_path / f"cremad-{layout}"
    split_dir = write_cremad_fixture(root, layout, clips_per_class=1, **kwargs)
    return {"root": str(root), "split_dir": str(split_dir), "frame_size": SMALL}


def count_decodes(monkeypatch) -> list:
    calls, real = [], cache_module.decode_clip

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(cache_module, "decode_clip", counting)
    monkeypatch.setattr(cache_module, "decode_all",  # in this process, where the counter is
                        lambda dataset, p, sources, workers, real=cache_module.decode_all: real(dataset, p, sources, 1))
    return calls


# --- the source digest and --force --------------------------------------------------------------
def test_a_fixed_file_is_decoded_again_without_force(tmp_path, monkeypatch):
    raw = cremad_tree(tmp_path)
    clip = CremaD.clip_list(CremaD.Params(**raw)).clips[0]
    wav = Path(raw["root"]) / "AudioWAV" / f"{clip}.wav"
    original = wav.read_bytes()
    wav.write_bytes(b"not a wav")
    assert set(data_check("cremad", raw).problems) == {clip}
    decodes = count_decodes(monkeypatch)
    assert set(data_check("cremad", raw).problems) == {clip} and decodes == []  # unchanged: reused
    wav.write_bytes(original)  # fixed: its size and modification time changed
    report = data_check("cremad", raw)
    assert report.ok and len(decodes) == 12, str(report)
    assert len(list((Path(raw["root"]) / ".geomreg-cache").iterdir())) == 1  # replaced in place


def test_a_clip_that_appears_and_a_touched_file_invalidate_the_cache(tmp_path, monkeypatch):
    raw = cremad_tree(tmp_path)
    clip = CremaD.clip_list(CremaD.Params(**raw)).clips[3]
    frames = Path(raw["root"]) / "Image-01-FPS" / clip
    moved = frames.rename(tmp_path / "aside")
    assert clip in data_check("cremad", raw).problems
    moved.rename(frames)
    decodes = count_decodes(monkeypatch)
    assert data_check("cremad", raw).ok and len(decodes) == 12
    jpg = sorted(frames.iterdir())[0]
    os.utime(jpg, ns=(jpg.stat().st_atime_ns, jpg.stat().st_mtime_ns + 10**9))  # same size, newer
    data_check("cremad", raw)
    assert len(decodes) == 24


def test_prepare_force_decodes_again(tmp_path, monkeypatch, capsys):
    raw = cremad_tree(tmp_path)
    out = tmp_path / "out"
    args = ["prepare", "cremad", "--raw", raw["root"], "--out", str(out), "--set", f"split_dir={raw['split_dir']}",
            "--set", f"frame_size={SMALL}"]
    assert main(args) == 0
    index = next(out.iterdir()) / "index.json"
    decodes = count_decodes(monkeypatch)
    assert main(args) == 0 and decodes == []
    assert main([*args, "--force"]) == 0 and len(decodes) == 12
    assert [p.name for p in out.iterdir()] == [index.parent.name] and index.exists()


# --- partial folders of interrupted prepares, and permissions -----------------------------------
SLOW_PREPARE = """
import sys, time
from benchmarks.data import cache
real_decode, real_all = cache.decode_clip, cache.decode_all
def slow(*args):
    out = real_decode(*args)
    print("decoding", flush=True)
    time.sleep(120)
    return out
cache.decode_clip = slow
cache.decode_all = lambda dataset, p, sources, workers: real_all(dataset, p, sources, 1)
from benchmarks.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def start_slow_prepare(raw: dict, out: Path) -> subprocess.Popen:
    args = ["prepare", "cremad", "--raw", raw["root"], "--out", str(out), "--set", f"split_dir={raw['split_dir']}",
            "--set", f"frame_size={SMALL}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first_line(proc, timeout_s=120) == "decoding", proc.stderr.read()
    return proc


def first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """The process's first line of output, or a failure after ``timeout_s`` (a hung child must not hang the suite)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s).strip()
    except queue.Empty:
        proc.kill()
        pytest.fail(f"the child printed nothing in {timeout_s} s")


def partial_folders(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_killed_prepare_leaves_a_folder_the_next_prepare_removes_and_sigterm_cleans_up(tmp_path):
    raw, out = cremad_tree(tmp_path), tmp_path / "out"
    proc = start_slow_prepare(raw, out)
    assert len(partial_folders(out)) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (left,) = partial_folders(out)
    assert (left / LOCK).exists()  # its writer is gone, so the lock is free

    proc = start_slow_prepare(raw, out)  # starts by removing the stale folder, writes its own
    assert not left.exists() and len(partial_folders(out)) == 1
    proc.send_signal(signal.SIGTERM)  # as Ctrl-C: its own partial folder is removed at once
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert partial_folders(out) == []


def test_stale_cleanup_spares_folders_in_use_and_other_names(tmp_path):
    import fcntl

    held, stale, fresh = (tmp_path / f".cremad-raw-0123456789ab.tmp-{s}" for s in ("held", "stale", "fresh"))
    foreign = tmp_path / ".someone-elses.tmp-x"
    for folder in (held, stale, fresh, foreign):
        folder.mkdir()
    (held / LOCK).touch()
    (stale / LOCK).touch()
    os.utime(foreign, (0, 0))
    with open(held / LOCK) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a prepare at work
        assert remove_stale_temps(tmp_path) == [stale]
    assert held.exists() and fresh.exists()  # fresh: no lock file yet, but just made
    os.utime(fresh, (0, 0))
    assert sorted(remove_stale_temps(tmp_path)) == sorted([held, fresh])  # held: its writer let go
    assert foreign.exists()  # not a name this suite writes


def test_a_prepared_cache_is_readable_by_others(tmp_path):
    raw = cremad_tree(tmp_path)
    previous = os.umask(0o022)
    try:
        cache = ensure_cache(CremaD, CremaD.Params(**raw))
    finally:
        os.umask(previous)
    assert cache.path.stat().st_mode & 0o777 == 0o755
    assert (cache.path / "index.json").stat().st_mode & 0o044 == 0o044


# --- media that decode but look wrong ------------------------------------------------------------
def test_truncated_media_and_a_low_rate_are_warned_by_name_and_logged(tmp_path, capsys):
    raw = cremad_tree(tmp_path, layout="raw")
    root = Path(raw["root"])
    cut_wav, cut_flv, low_rate = CremaD.clip_list(CremaD.Params(**raw)).clips[:3]
    wav = root / "AudioWAV" / f"{cut_wav}.wav"
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])  # the header still gives the full length
    flv = root / "VideoFlash" / f"{cut_flv}.flv"
    flv.write_bytes(flv.read_bytes()[: flv.stat().st_size // 3])
    wave, rate = soundfile.read(root / "AudioWAV" / f"{low_rate}.wav")
    soundfile.write(root / "AudioWAV" / f"{low_rate}.wav", wave[::2], rate // 2, subtype="PCM_16")  # 8 kHz

    report = data_check("cremad", raw)
    assert report.ok  # used, with a warning each
    assert set(report.warnings) == {cut_wav, cut_flv, low_rate}
    assert "audio decodes to" in report.warnings[cut_wav][0] and str(wav) in report.warnings[cut_wav][0]
    assert "video decodes to" in report.warnings[cut_flv][0] and str(flv) in report.warnings[cut_flv][0]
    assert "8000 Hz, below 16000 Hz" in report.warnings[low_rate][0]
    log = report.log.read_text()
    assert all(f"warning {clip}:" in log for clip in (cut_wav, cut_flv, low_rate))
    assert "3 clips used with a warning:" in str(report)
    # CREMA-D's own 16 kHz wavs are resampled to the pipeline's 22,050 Hz without a word
    assert not any("16000 Hz, below" in n for notes in report.warnings.values() for n in notes)


def test_an_intact_video_with_longer_audio_is_not_called_truncated(tmp_path):
    root = tmp_path / "ks"
    split_dir = write_ks_fixture(root, "raw")  # audio tones of up to 2.5 s in 2-3 s videos
    report = data_check("kinetics_sounds", {"root": str(root), "split_dir": str(split_dir), "frame_size": SMALL})
    assert report.ok and report.warnings == {}


def test_an_index_without_a_source_digest_is_decoded_again(tmp_path, monkeypatch):
    raw = cremad_tree(tmp_path)
    params = CremaD.Params(**raw)
    cache = ensure_cache(CremaD, params)
    index = json.loads((cache.path / "index.json").read_text())
    index.pop("sources")  # an index without a source digest cannot vouch for the files: decoded again
    (cache.path / "index.json").write_text(json.dumps(index))
    decodes = count_decodes(monkeypatch)
    prepare(CremaD, raw["root"], Path(raw["root"]) / ".geomreg-cache", params)
    assert len(decodes) == 12


# --- the cache format ------------------------------------------------------------------------------
def test_another_cache_format_prepares_another_folder_with_the_same_data_fingerprint(tmp_path, monkeypatch):
    raw = cremad_tree(tmp_path)
    params = CremaD.Params(**raw)
    monkeypatch.setattr(cache_module, "CACHE_VERSION", 1)
    older = ensure_cache(CremaD, params)
    monkeypatch.undo()
    newer = ensure_cache(CremaD, params)
    assert newer.path != older.path and (older.path / "frames.u8").exists()  # the older folder is left as it was
    assert (older.index["version"], newer.index["version"]) == (1, cache_module.CACHE_VERSION)
    # the digest the planar (format 1) cache of this tree recorded: the runs trained on it keep their names
    assert older.fingerprint == newer.fingerprint and newer.fingerprint["digest"] == "fba0a2d69bc32e15"
