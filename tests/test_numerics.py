"""Portable numerics: the mode is exported before torch runs and recorded per run (verify: test_verify.py)."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.core import numerics
from benchmarks.core.strict import ConfigError
from benchmarks.grid.config import load_grid


def test_configure_exports_the_pinned_variables_to_child_processes():
    code = ("import os, sys; from benchmarks.core import numerics; numerics.configure(None); import torch; "
            "print(os.environ['GEOMREG_NUMERICS'], torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in os.environ.items() if k not in (numerics.MODE_VARIABLE, *numerics.PORTABLE_ENVIRONMENT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    mode, capability = out.split()
    assert mode == "portable"
    if "avx2" in numerics.cpu_flags():
        assert capability == "AVX2"  # never AVX512, whatever the processor offers


def test_configure_refuses_after_torch_and_bad_modes(monkeypatch):
    for key in numerics.PORTABLE_ENVIRONMENT:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv(numerics.MODE_VARIABLE, raising=False)
    import torch  # noqa: F401 - already imported by the test session; the point is that it is
    with pytest.raises(RuntimeError, match="before torch"):
        numerics.configure("portable")
    with pytest.raises(ValueError, match="portable, native"):
        numerics.configure("fast")
    assert numerics.configure("native") == "native" and numerics.current_mode() == "native"


def test_mode_from_argv():
    assert numerics.mode_from_argv(["grid", "x.yaml", "--numerics", "native"]) == "native"
    assert numerics.mode_from_argv(["--numerics=portable", "grid"]) == "portable"
    assert numerics.mode_from_argv(["grid", "x.yaml"]) is None


def test_hardware_record_names_what_decides_the_bits():
    record = numerics.hardware_record()
    assert set(record) >= {"cpu", "isa", "machine", "torch_cpu_capability", "numerics", "threads"}
    assert record["threads"] >= 1 and record["cpu"]


def probe_file(ops: dict, train: dict, vendor: str) -> dict:
    machine = {"cpu": f"{vendor} CPU", "vendor": vendor, "isa": ["avx2"], "machine": "x86_64", "torch": "2"}
    return {"machine": machine, "steps": 20,
            "settings": {"portable": {"ops": ops, "train": train, "s_per_step": 0.03},
                         "native": {"error": "RuntimeError: killed"}}}


def test_numerics_probe_compare_names_the_kernels_that_differ():
    from benchmarks.run.numerics_probe import compare

    ops, train = {"conv.fwd": "a1", "linear.fwd": "b2", "cdist": "c3"}, {"joint-s0": "d4", "dgl-s0": "e5"}
    same, same_ok = compare(probe_file(ops, train, "AuthenticAMD"), probe_file(ops, train, "GenuineIntel"))
    assert same_ok and "portable: every digest agrees" in same[2] and "native: not comparable" in same[3]
    assert same[0].startswith("A: AuthenticAMD CPU (AuthenticAMD; avx2)")
    other = probe_file({**ops, "linear.fwd": "zz", "cdist": "yy"}, {**train, "dgl-s0": "xx"}, "GenuineIntel")
    lines, ok = compare(probe_file(ops, train, "AuthenticAMD"), other)
    assert not ok and "DIFFERENT: 2 ops (linear.fwd, cdist), 1 of 2 trainings" in lines[2]


def test_numerics_probe_compare_refuses_a_file_it_did_not_write(tmp_path):
    from benchmarks.core.strict import ConfigError
    from benchmarks.run.numerics_probe import read_probe

    good = tmp_path / "good.json"
    good.write_text(json.dumps(probe_file({"conv.fwd": "a1"}, {"joint-s0": "d4"}, "AuthenticAMD")))
    assert read_probe(good)["machine"]["vendor"] == "AuthenticAMD"
    for name, text, named in [("other.json", '{"meta": {}, "kernels": {}}', "'machine'"),
                              ("half.json", '{"machine": {"cpu": "x"}, "settings": {}}', "'machine.vendor'"),
                              ("broken.json", "{not json", "not JSON")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=named) as err:
            read_probe(tmp_path / name)
        assert name in str(err.value)


@pytest.mark.slow
def test_repeatability_in_the_portable_numerics_repeats_three_ways(tmp_path):
    """The command as CI runs it (a fresh interpreter, the portable mode) on the debug grid."""
    env = {k: v for k, v in os.environ.items() if k not in (numerics.MODE_VARIABLE, *numerics.PORTABLE_ENVIRONMENT)}
    out = subprocess.run([sys.executable, "-m", "benchmarks", "repeatability", "benchmarks/configs/debug.yaml",
                          "--method", "joint", "--runs", str(tmp_path / "same")], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "sample: joint-s0, joint+dagr-s0 (2 epochs)", "again, one job: identical to one job",
        "two jobs: identical to one job",
        "command line, interrupted after its first checkpoint, then resumed: identical to one job"]


def test_repeatability_names_the_record_that_does_not_repeat(debug_raw, tmp_path):
    from benchmarks.grid.config import resolve_run
    from benchmarks.run.repeatability import check, compare_ways
    from benchmarks.run.runner import run_one

    runs = [resolve_run(debug_raw)]
    ways = {"first": tmp_path / "a", "second": tmp_path / "b", "third": tmp_path / "c"}
    for folder in ways.values():
        run_one(runs[0], folder)
    assert compare_ways(runs, ways) == (["sample: joint-s0 (2 epochs)", "second: identical to first",
                                         "third: identical to first"], True)
    metrics = next((tmp_path / "c").glob("debug/*/metrics.jsonl"))
    metrics.write_text(metrics.read_text().replace('"epoch": 1', '"epoch": 7'))
    lines, ok = compare_ways(runs, ways)
    assert not ok and lines[2] == "third: DIFFERENT: joint-s0 (metrics)"
    with pytest.raises(ConfigError, match="portable numerics"):  # this test process runs the native mode
        check(load_grid("benchmarks/configs/debug.yaml"), "joint", epochs=2, root=tmp_path / "d")
