"""Portable numerics: the mode is exported before torch runs, recorded per run, and checked by verify."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from benchmarks.core import numerics
from benchmarks.run.verify import compare


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


def frame(**values):
    row = {"run_id": "a1", "label": "joint-s0", "hw_cpu": "X", "hw_isa": "avx2 fma", "hw_machine": "x86_64",
           "hw_numerics": "portable", "hw_torch_cpu_capability": "AVX2", "hw_threads": 1}
    for column in ("best_val", "last"):
        row.update({f"{column}_epoch": 3, f"{column}_val_acc": 0.5, f"{column}_test_acc": 0.91,
                    f"{column}_test_acc_audio": 0.6, f"{column}_test_acc_visual": 0.4})
    row.update(values)
    return pd.DataFrame([row])


def test_verify_compare_identical_different_stale_and_not_comparable():
    assert compare(frame(), frame()).identical
    verdict = compare(frame(), frame(best_val_test_acc=0.912))
    assert not verdict.identical and verdict.exit_code == 1
    assert any("best_val_test_acc differs by up to 0.002" in line for line in verdict.lines)
    stale = compare(frame(), frame(run_id="b2"))
    assert stale.exit_code == 1 and any("NOT IN THE COMMITTED" in line for line in stale.lines)
    native = compare(frame(hw_numerics="native"), frame(best_val_test_acc=0.912))
    assert not native.identical and native.exit_code == 0 and any("not comparable" in line for line in native.lines)
