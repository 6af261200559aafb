"""Portable numerics: the mode is exported before torch runs and recorded per run (verify: test_verify.py)."""
import os
import subprocess
import sys

import pytest

from benchmarks.core import numerics


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
