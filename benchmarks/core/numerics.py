"""Portable CPU numerics: the same run gives the same bits on every x86-64 machine with AVX2 of one CPU vendor.

PyTorch picks CPU kernels by the processor's instruction sets: ATen's vectorized kernels by its CPU
capability (AVX2 or AVX-512), oneDNN's convolutions by the widest ISA it finds, MKL's BLAS and vector
maths by its own dispatch, OpenBLAS (scikit-learn's k-means, D&R) by its core type. Other kernels sum in
other orders, and 15 epochs turn the last bits into points of accuracy. The portable mode pins each of
them to AVX2 and fixes the number of threads (chunking of parallel reductions depends on it), so a run
computes the same on an AVX-512 server and on an AVX2-only laptop of the same vendor.

Across vendors MKL still computes other bits: its matrix and dot products and its vector maths (exp,
log, sqrt, ...) take vendor-specific code paths under every ``MKL_CBWR`` setting, so an AMD and an Intel
machine are two bit-comparable classes (:func:`bit_class`). ``docs/performance.md`` lists what was
measured: which knobs change which kernels on which vendor, and what the mode costs.

The variables must be set before torch is imported (ATen and oneDNN read them once), so
:func:`configure` is the first thing the command line does, and it exports them to every worker
process and cluster job it starts. This module must not import torch at module level.

``GEOMREG_NUMERICS=native`` (or ``--numerics native``) opts out, for speed; runs record the mode.
GPUs are outside this guarantee: their kernels are another matter (the hardware record still applies).
"""
from __future__ import annotations

import os
import platform
import sys
from typing import Any

MODE_VARIABLE = "GEOMREG_NUMERICS"
MODES = ("portable", "native")
# Variables that pin instruction-set dispatch to AVX2 (every x86-64 machine of the last decade has it).
PORTABLE_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorized CPU kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions, some matmuls)
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility (BLAS, vector maths)
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS under numpy and scikit-learn: its AVX2 kernels
    "OMP_NUM_THREADS": "1",  # OpenMP loops outside torch (scikit-learn's k-means sums per thread)
}
# Intra-op threads of every run in the portable mode, whatever the core count: one thread is the
# order of summation every machine can follow, and a grid fills the cores with parallel runs instead.
PORTABLE_THREADS = 1
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "neon", "asimd")


def configure(mode: str | None = None) -> str:
    """Choose the numerics mode (argument, else ``$GEOMREG_NUMERICS``, else portable) and export it.

    Call before torch is imported; in the portable mode a torch already imported is an error, since
    the pinned variables would no longer take effect."""
    mode = mode or os.environ.get(MODE_VARIABLE) or "portable"
    if mode not in MODES:
        raise ValueError(f"numerics mode must be one of {', '.join(MODES)}, got {mode!r} "
                         f"(from --numerics or ${MODE_VARIABLE})")
    os.environ[MODE_VARIABLE] = mode  # inherited by worker processes and submitit jobs
    if mode == "portable":
        pinned = {k: v for k, v in PORTABLE_ENVIRONMENT.items() if os.environ.get(k) != v}
        if pinned and ("torch" in sys.modules or "numpy" in sys.modules):
            raise RuntimeError("portable numerics must be configured before torch (or numpy) is imported")
        os.environ.update(PORTABLE_ENVIRONMENT)
    return mode


def mode_from_argv(argv: list[str]) -> str | None:
    """The value of ``--numerics`` in a command line (``--numerics X`` or ``--numerics=X``), if any."""
    for i, arg in enumerate(argv):
        if arg == "--numerics" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--numerics="):
            return arg.split("=", 1)[1]
    return None


def current_mode() -> str:
    """The mode this process runs in: what :func:`configure` exported, else native (a library user)."""
    mode = os.environ.get(MODE_VARIABLE, "native")
    return mode if mode in MODES else "native"


def pin_threads() -> None:
    """In the portable mode, fix torch's intra-op threads (called when a run starts)."""
    if current_mode() == "portable":
        import torch

        torch.set_num_threads(PORTABLE_THREADS)


def cpuinfo_field(*names: str) -> str | None:
    """The first ``/proc/cpuinfo`` field (Linux) whose line starts with one of ``names``, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(names):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The processor's model name, else what the platform module says."""
    return cpuinfo_field("model name", "Model", "Hardware") or platform.processor() or platform.machine()


def cpu_vendor(model: str | None = None) -> str:
    """``GenuineIntel``, ``AuthenticAMD``, ... from ``/proc/cpuinfo``; for a recorded ``model`` name
    (records written before the vendor was recorded), read from the name, else ``unknown``."""
    if model is None:
        found = cpuinfo_field("vendor_id")
        if found:
            return found
        model = cpu_model()
    for word, vendor in (("intel", "GenuineIntel"), ("amd", "AuthenticAMD")):
        if word in model.lower():
            return vendor
    return "unknown"


def cpu_flags() -> list[str]:
    """The instruction-set flags among :data:`ISA_FLAGS` that this processor reports."""
    present = set((cpuinfo_field("flags", "Features") or "").split())
    return [flag for flag in ISA_FLAGS if flag in present]


def pinned_text(pinned: dict[str, Any] | str | None) -> str | None:
    """The pinned variables as one ``NAME=value`` string (how records and tables show them)."""
    if pinned is None or isinstance(pinned, str):
        return pinned
    return " ".join(f"{k}={v}" for k, v in sorted(pinned.items()))


def bit_class(hardware: dict[str, Any]) -> str | None:
    """The class of machines that compute the same bits as a run with this hardware record, or None
    when the run is outside the guarantee (native numerics, no AVX2, not x86-64).

    A class is one CPU vendor's x86-64 processors with AVX2 in the portable mode with the same pins:
    within it every kernel the suite uses computes the same bits (docs/performance.md gives the measured
    digests behind it); records of one class must be identical, records of different classes are only
    statistically comparable."""
    isa = hardware.get("isa") or ""
    isa = isa if isinstance(isa, str) else " ".join(isa)
    if hardware.get("numerics") != "portable" or hardware.get("machine") != "x86_64" or "avx2" not in isa.split():
        return None
    vendor = hardware.get("vendor") or cpu_vendor(hardware.get("cpu") or "")
    return f"{vendor} x86-64 with AVX2, portable numerics ({pinned_text(hardware.get('pinned')) or 'pins unrecorded'})"


def hardware_record() -> dict[str, Any]:
    """What decides a CPU run's bits: processor, ISA flags, torch's CPU capability, mode, threads."""
    import torch

    return {
        "cpu": cpu_model(),
        "vendor": cpu_vendor(),
        "isa": cpu_flags(),
        "machine": platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numerics": current_mode(),
        "threads": torch.get_num_threads(),
        "pinned": {k: os.environ.get(k) for k in PORTABLE_ENVIRONMENT},
    }
