"""The real-data path as a new user meets it, on fixture trees in the real layouts: one clear line and a
documented exit code for each expected failure, grids that say which runs failed, runs that record
which data they saw, explicit opt-in for incomplete copies, and the documented steps run as written."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.data.cremad import CremaD
from benchmarks.data.fixtures import write_cremad_fixture, write_ks_fixture
from benchmarks.core import errors
from benchmarks.grid.config import expand_grid, load_grid
from benchmarks.grid.naming import run_dir_for

REPO = Path(__file__).resolve().parent.parent
SMALL = 16
TABLE1 = "benchmarks/configs/table1_cremad.yaml"
# The Table 1 grid cut to one quick run: joint training, small CNNs, one epoch.
QUICK_GRID = ["seeds=[0]", "methods={joint: {}}", "dagr_arms=[none]", "references=[]", "run.optim.epochs=1",
              "run.model.encoder=small_cnn", "run.model.width=8", "run.data.batch_size=4",
              f"run.data.params.frame_size={SMALL}"]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def cremad_tree(tmp_path: Path, layout: str = "ogm_ge", clips_per_class: int = 1) -> tuple[Path, Path]:
    root = tmp_path / "CREMA-D"
    return root, write_cremad_fixture(root, layout, clips_per_class=clips_per_class)


def sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def one_line_error(capsys, code: int, expected: int, lines: int = 1) -> str:
    """The message of a failed command: ``lines`` lines starting with "error:", no traceback."""
    err = capsys.readouterr().err
    assert code == expected, err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == lines, err
    return err


def drop_audio(root: Path, split_dir: Path, n: int) -> list[str]:
    """Delete the wav of the first training clip of ``n`` classes (each class keeps clips if it had 2)."""
    clips = CremaD.clip_list(CremaD.Params(split_dir=str(split_dir)))
    first = {}
    for clip, label, split in zip(clips.clips, clips.labels, clips.splits):
        if split == "train":
            first.setdefault(label, clip)
    dropped = list(first.values())[:n]
    for clip in dropped:
        (root / "AudioWAV" / f"{clip}.wav").unlink()
    return dropped


# --- 5: exit codes, one line each ---------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """Make folders read-only for this test, also when the tests run as root (who may write anyway)."""
    folders, real_access = [], os.access

    def access(path, mode, *args, **kwargs):
        if mode & (os.W_OK | os.R_OK) and any(Path(path) == f or f in Path(path).parents for f in folders):
            return False
        return real_access(path, mode, *args, **kwargs)

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        folders.append(folder)
        return folder

    monkeypatch.setattr(os, "access", access)
    yield make
    for folder in folders:
        folder.chmod(0o755)


def test_unwritable_and_unreadable_folders_are_one_line_with_exit_4(tmp_path, capsys, read_only):
    root, split_dir = cremad_tree(tmp_path)
    data = sets(f"split_dir={split_dir}", f"frame_size={SMALL}")
    out = read_only(tmp_path / "out")
    err = one_line_error(capsys, main(["prepare", "cremad", "--raw", str(root), "--out", str(out), *data]),
                         errors.FILESYSTEM)
    assert "cache folder" in err and str(out) in err
    cache = read_only(tmp_path / "cache")
    err = one_line_error(capsys, main(["data-check", "cremad", "--root", str(root), *data,
                                       "--set", f"cache_dir={cache}"]), errors.FILESYSTEM)
    assert str(cache) in err and "not writable" in err
    runs = read_only(tmp_path / "runs")
    err = one_line_error(capsys, main(["grid", "benchmarks/configs/debug.yaml", "--runs", str(runs), "--no-progress"]),
                         errors.FILESYSTEM)
    assert "runs folder" in err and str(runs) in err
    read_only(root)
    err = one_line_error(capsys, main(["data-check", "cremad", "--root", str(root), *data]), errors.FILESYSTEM)
    assert "not readable" in err and str(root) in err


def test_any_permission_error_of_a_command_is_one_line(monkeypatch, capsys):
    def denied(args):
        raise PermissionError(13, "Permission denied", "/some/results/table.md")

    monkeypatch.setitem(sys.modules["benchmarks.__main__"].COMMANDS, "tables", denied)
    err = one_line_error(capsys, main(["tables", "benchmarks/configs/debug.yaml"]), errors.FILESYSTEM)
    assert err.strip() == "error: Permission denied: /some/results/table.md"


def test_usage_and_data_errors_have_their_own_codes(tmp_path, capsys):
    root, split_dir = cremad_tree(tmp_path)
    err = one_line_error(capsys, main(["data-check", "cremad", "--root", str(tmp_path / "nowhere")]), errors.USAGE,
                         lines=4)  # and the three accepted layouts
    assert "nowhere does not exist" in err.splitlines()[0]
    one_line_error(capsys, main(["data-check", "cremad"]), errors.USAGE)  # no --root
    drop_audio(root, split_dir, 1)
    code = main(["data-check", "cremad", "--root", str(root), *sets(f"split_dir={split_dir}", f"frame_size={SMALL}")])
    assert code == errors.DATA_NOT_SUFFICIENT and "NOT OK" in capsys.readouterr().out


# --- 8: messages ----------------------------------------------------------------------------------
def test_a_ks_clip_without_its_video_names_the_file_once_and_what_is_missing(tmp_path):
    root = tmp_path / "ks"
    split_dir = write_ks_fixture(root, "raw")
    params = {"root": str(root), "split_dir": str(split_dir), "frame_size": SMALL}
    from benchmarks.data.check import data_check
    from benchmarks.data.kinetics_sounds import KineticsSounds

    both, video_only = KineticsSounds.clip_list(KineticsSounds.Params(**params)).clips[:2]  # clip 1 has a wav
    (root / "videos" / f"{both}.mp4").unlink()
    (root / "videos" / f"{video_only}.mp4").unlink()
    problems = data_check("kinetics_sounds", params).problems
    mp4 = str(root / "videos" / f"{both}.mp4")
    assert problems[both].startswith(f"missing audio and video: {mp4}") and problems[both].count(mp4) == 1
    assert problems[video_only] == f"missing video ({root / 'videos' / f'{video_only}.mp4'})"


def test_a_broken_mp4_is_called_a_video_file(tmp_path):
    root = tmp_path / "ks"
    split_dir = write_ks_fixture(root, "raw")
    from benchmarks.data.check import data_check

    broken = next(p for p in (root / "videos").glob("*.mp4") if not (root / "audio" / f"{p.stem}.wav").exists())
    broken.write_bytes(broken.read_bytes()[:100])
    report = data_check("kinetics_sounds", {"root": str(root), "split_dir": str(split_dir), "frame_size": SMALL})
    assert report.problems[broken.stem].startswith(f"unreadable video file (its audio stream) {broken}")


def test_prepare_set_names_the_key_and_keeps_folder_names_as_text(tmp_path, capsys, monkeypatch):
    root, split_dir = cremad_tree(tmp_path)
    base = ["prepare", "cremad", "--raw", str(root), "--out", str(tmp_path / "out")]
    err = one_line_error(capsys, main([*base, "--set", "frame_sise=16"]), errors.USAGE)
    assert "'frame_sise'" in err and "--set.frame_sise" not in err
    monkeypatch.chdir(tmp_path)
    shutil.copytree(split_dir, tmp_path / "2024")  # a split folder named like a number
    assert main([*base, "--set", "split_dir=2024", "--set", f"frame_size={SMALL}"]) == errors.OK


def test_a_partial_copy_prints_a_count_and_the_first_few_and_logs_all(tmp_path, capsys):
    root, split_dir = cremad_tree(tmp_path, clips_per_class=2)
    wavs = sorted((root / "AudioWAV").glob("*.wav"))[:14]
    for wav in wavs:
        wav.unlink()
    out = tmp_path / "out"
    data = sets(f"split_dir={split_dir}", f"frame_size={SMALL}")
    assert main(["prepare", "cremad", "--raw", str(root), "--out", str(out), *data]) == errors.OK
    printed = capsys.readouterr().out.strip().splitlines()
    assert "14 listed clips left out (0 unreadable, 14 missing)" in printed[0]
    log = next(out.iterdir()) / "problems.txt"
    assert printed[1] == f"  14 listed clips missing (left out); the first 10 here, all in {log}:"
    assert len(printed) == 12 and sum(wav.stem in "".join(printed) for wav in wavs) == 10
    assert str(log) in printed[0] and len(log.read_text().splitlines()) == 14
    assert main(["data-check", "cremad", "--root", str(root), "--set", f"cache_dir={out}", *data]) == 1
    report = capsys.readouterr().out
    assert f"14 listed clips missing (left out); the first 10 here, all in {log}" in report
    assert sum(wav.stem in report for wav in wavs) == 10


def test_an_unreadable_clip_is_named_on_screen_before_the_missing_ones(tmp_path, capsys):
    """One corrupt wav among many absent clips: a different fix (download that file again, not point at
    another folder), so it is counted apart and listed first, with the decoder's reason."""
    root, split_dir = cremad_tree(tmp_path, clips_per_class=2)
    *absent, corrupt = sorted((root / "AudioWAV").glob("*.wav"))[-15:]  # named after every absent one
    for wav in absent:
        wav.unlink()
    corrupt.write_bytes(b"RIFF, but not a wav")
    out = tmp_path / "out"
    data = sets(f"split_dir={split_dir}", f"frame_size={SMALL}")
    assert main(["prepare", "cremad", "--raw", str(root), "--out", str(out), *data]) == errors.OK
    printed = capsys.readouterr().out.splitlines()
    log = next(out.iterdir()) / "problems.txt"
    assert "15 listed clips left out (1 unreadable, 14 missing)" in printed[0]
    assert printed[1] == "  1 listed clips unreadable (left out; the decoder's reason follows each):"
    assert printed[2].startswith(f"    {corrupt.stem}: unreadable audio file {corrupt}: ")
    assert printed[3] == f"  14 listed clips missing (left out); the first 10 here, all in {log}:"
    assert log.read_text().splitlines()[0].startswith(f"unreadable {corrupt.stem}: unreadable audio file {corrupt}")
    assert main(["data-check", "cremad", "--root", str(root), "--set", f"cache_dir={out}", *data]) == 1
    report = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(report) if "left out" in line)
    assert report[first + 1] == printed[2] and report[first + 2] == printed[3]
    assert report[-1].startswith("NOT OK: 15 of 24 listed clips left out (1 unreadable, 14 missing)")


def test_a_cache_given_as_the_root_says_how_to_point_at_it(tmp_path, capsys):
    root, split_dir = cremad_tree(tmp_path)
    out = tmp_path / "out"
    data = sets(f"split_dir={split_dir}", f"frame_size={SMALL}")
    assert main(["prepare", "cremad", "--raw", str(root), "--out", str(out), *data]) == errors.OK
    capsys.readouterr()
    for given in (out, next(out.iterdir())):
        err = one_line_error(capsys, main(["data-check", "cremad", "--root", str(given), *data]), errors.USAGE)
        assert "is a cache written by `prepare`" in err and f"cache_dir={out}" in err


# --- 3 and 9: the data a run saw, and incomplete copies -------------------------------------------
@pytest.mark.filterwarnings("ignore:CREMA-D. 3 listed clips")
def test_runs_record_their_data_and_a_partial_copy_is_another_run_marked_in_the_table(tmp_path, capsys):
    root, split_dir = cremad_tree(tmp_path, clips_per_class=2)
    grid = [TABLE1, "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results"), "--no-progress",
            *sets(*QUICK_GRID, f"run.data.params.root={root}", f"run.data.params.split_dir={split_dir}")]
    assert main(["reproduce", *grid]) == errors.OK
    (full,) = (tmp_path / "runs" / "cremad").iterdir()
    final = json.loads((full / "final.json").read_text())
    assert final["data"]["clips"] == {"train": 12, "test": 12} and final["data"]["left_out"] == 0
    assert full.name.endswith(f"-data{final['data']['digest'][:8]}")
    table = (tmp_path / "results" / "table1_cremad" / "table.md").read_text()
    assert "- data: train 12 of 12, test 12 of 12 listed clips, complete" in table
    capsys.readouterr()

    drop_audio(root, split_dir, 3)  # a partial copy at the same place
    assert main(["reproduce", *grid]) == errors.DATA_NOT_SUFFICIENT  # refused without the opt-in
    err = capsys.readouterr().err
    assert "NOT OK: 3 of 24 listed clips left out (0 unreadable, 3 missing)" in err and "--allow-missing 3" in err
    assert main(["reproduce", *grid, "--allow-missing", "0.2"]) == errors.OK
    assert "1 runs trained, 0 already done" in capsys.readouterr().out  # not the full copy's run
    partial = next(p for p in (tmp_path / "runs" / "cremad").iterdir() if p != full)
    record = json.loads((partial / "final.json").read_text())["data"]
    assert record["left_out"] == 3 and sum(record["clips"].values()) == 21
    table = (tmp_path / "results" / "table1_cremad" / "table.md").read_text()
    assert "**PARTIAL DATA**" in table and "3 missing or unreadable clips left out" in table
    assert f"`{record['digest']}`" in table and final["data"]["digest"] not in table


@pytest.mark.filterwarnings("ignore:CREMA-D. 1 listed clips")
def test_a_run_whose_data_changed_after_the_grid_named_it_fails_and_trains_nothing(tmp_path):
    from benchmarks.data.check import data_check
    from benchmarks.run.runner import run_one

    root, split_dir = cremad_tree(tmp_path, clips_per_class=2)
    (cfg,) = expand_grid(load_grid(TABLE1, [*QUICK_GRID, f"run.data.params.root={root}",
                                            f"run.data.params.split_dir={split_dir}"]))
    assert data_check("cremad", cfg.data.params).ok  # the grid prepares the cache; its runs are named after it
    named = run_dir_for(cfg, tmp_path / "runs")
    drop_audio(root, split_dir, 1)  # the files change before the run loads its data
    status, run = run_one(cfg, tmp_path / "runs")
    assert (status, run.path) == ("failed", named.path) and not run.metrics.exists()
    error = json.loads(run.failed.read_text())["error"]
    assert error.startswith("DataChangedError: the dataset's files changed while the grid ran: this run directory "
                            f"is for data {named.path.name.rsplit('-', 1)[1]}, the cache now holds data")


def test_shipped_datasets_keep_their_run_directories():
    cfg = expand_grid(load_grid("benchmarks/configs/avdigits.yaml"))[0]
    assert run_dir_for(cfg, Path("runs")).path.name == f"{cfg.label}-{cfg.run_id()}"


def test_allow_missing_takes_a_count_or_a_fraction(tmp_path, capsys):
    root, split_dir = cremad_tree(tmp_path, clips_per_class=2)
    drop_audio(root, split_dir, 3)
    check = ["data-check", "cremad", "--root", str(root), *sets(f"split_dir={split_dir}", f"frame_size={SMALL}")]
    assert main([*check, "--allow-missing", "2"]) == errors.DATA_NOT_SUFFICIENT
    assert main([*check, "--allow-missing", "3"]) == errors.OK
    assert "ok with a PARTIAL copy: 3 of 24 listed clips left out, within --allow-missing 3" in capsys.readouterr().out
    assert main([*check, "--allow-missing", "0.1"]) == errors.DATA_NOT_SUFFICIENT  # floor(2.4) = 2
    assert main([*check, "--allow-missing", "0.125"]) == errors.OK  # exactly 3
    with pytest.raises(SystemExit) as exit_:
        main([*check, "--allow-missing", "1.5"])
    assert exit_.value.code == errors.USAGE


# --- 4: grids that had failures -------------------------------------------------------------------
def test_grid_and_reproduce_exit_3_and_end_with_each_failure(tmp_path, capsys):
    diverging = ["--set", "seeds=[0]", "--set", "dagr_arms=[none]", "--set", "references=[]",
                 "--set", "run.model.width=8", "--set", "run.optim.epochs=1",
                 "--set", "sweep={optim.lr: [0.05, 1.0e+30]}"]
    args = ["benchmarks/configs/debug.yaml", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"),
            "--no-progress", *diverging]
    assert main(["grid", *args]) == errors.RUNS_FAILED
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert "1 runs trained" in captured.err and re.search(r"failed: .*joint-s0-\w+: NonFiniteLossError: non-finite", last)
    assert main(["reproduce", *args]) == errors.RUNS_FAILED  # the failed run is tried again, fails again
    captured = capsys.readouterr()
    assert "FAILED: joint-s0" in captured.out  # in the table
    assert "NonFiniteLossError" in captured.err.strip().splitlines()[-1]


# --- 1, 10 and the documented steps ---------------------------------------------------------------
def make(target: str, stamp: Path, **variables: str) -> subprocess.CompletedProcess:
    """``make target`` with this interpreter (no set-up of a virtual environment)."""
    assigned = [f"{k}={v}" for k, v in {"PY": sys.executable, "STAMP": str(stamp), **variables}.items()]
    return subprocess.run(["make", "-s", "-C", str(REPO), target, *assigned], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})


@pytest.fixture
def stamp(tmp_path) -> Path:
    """Stands in for the virtual environment's stamp: newer than pyproject.toml."""
    path = tmp_path / "installed"
    path.touch()
    return path


@needs_make
def test_table_targets_do_not_write_the_readme(stamp):
    for target in ("table1", "table4"):
        dry = subprocess.run(["make", "-n", "-C", str(REPO), target, "DATA_ROOT=/data", "CACHE_DIR=/cache",
                              f"STAMP={stamp}"], capture_output=True, text=True).stdout
        assert "reproduce" in dry and "README" not in dry and "--allow-missing 0" in dry
        assert "run.data.params.cache_dir='/cache'" in dry
    dry = subprocess.run(["make", "-n", "-C", str(REPO), "reproduce", f"STAMP={stamp}"], capture_output=True,
                         text=True).stdout
    assert "--readme README.md" in dry  # the default grid's table still belongs there


@needs_make
def test_make_data_check_uses_the_prepared_cache_and_the_data_args(tmp_path, stamp):
    root, split_dir = cremad_tree(tmp_path)
    cache = tmp_path / "fast-cache"
    assert main(["prepare", "cremad", "--raw", str(root), "--out", str(cache),
                 *sets(f"split_dir={split_dir}", "frame_size=24")]) == errors.OK
    index = next(cache.iterdir()) / "index.json"
    before = index.stat()
    args = f"--set run.data.params.split_dir={split_dir} --set run.data.params.frame_size=24"
    done = make("data-check", stamp, DATA_ROOT=str(root), CACHE_DIR=str(cache), ARGS=args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("ok") and str(index.parent) in done.stdout
    assert index.stat().st_ino == before.st_ino and index.stat().st_mtime_ns == before.st_mtime_ns
    assert not (root / ".geomreg-cache").exists()
    done = make("data-check", stamp, DATA_ROOT=str(root), CACHE_DIR=str(cache), ARGS=args.replace("24", "32"))
    assert done.returncode == 0 and len(list(cache.iterdir())) == 2  # other data params: their own cache


def documented_steps() -> list[str]:
    """The command lines of the first bash block of docs/datasets.md's step-by-step section."""
    text = (REPO / "docs" / "datasets.md").read_text()
    block = text.split("## From the download to the tables", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.slow
@needs_make
def test_the_documented_steps_run_as_written_and_decode_once(tmp_path, stamp):
    root, split_dir = cremad_tree(tmp_path, layout="raw", clips_per_class=2)  # 2: a validation clip per class
    cache = tmp_path / "fast" / "cremad-cache"
    place = {"/data/CREMA-D": str(root), "/fast/cremad-cache": str(cache)}
    data = f"--set split_dir={split_dir} --set frame_size={SMALL}"
    quick = " ".join(f"--set {shlex.quote(o)}" for o in [*QUICK_GRID, f"run.data.params.split_dir={split_dir}"])
    steps = documented_steps()
    assert [s.split()[:2] for s in steps] == [["python", "-m"], ["make", "data-check"], ["make", "table1"],
                                              ["make", "table4"]]
    for step in steps:
        for placeholder, path in place.items():
            step = step.replace(placeholder, path)
        words = shlex.split(step)
        if words[0] == "python":  # the test's split lists and frame size, as a user passes params
            command = [sys.executable, *words[1:], *shlex.split(data)]
        else:
            command = ["make", "-s", "-C", str(REPO), *words[1:], f"PY={sys.executable}", f"STAMP={stamp}",
                       f"RUNS={tmp_path / 'runs'}", f"RESULTS={tmp_path / 'results'}", f"ARGS={quick}"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "TQDM_DISABLE": "1"})
        assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
        if words[0] == "python":
            (prepared,) = cache.iterdir()
            first = (prepared / "index.json").stat()
    (still,) = cache.iterdir()  # decoded once: the same folder, never rewritten, nothing under the root
    assert still == prepared and (still / "index.json").stat().st_mtime_ns == first.st_mtime_ns
    assert not (root / ".geomreg-cache").exists()
    assert (tmp_path / "results" / "table1_cremad" / "table.md").exists()
    assert (tmp_path / "results" / "table4_cremad" / "table.md").exists()
