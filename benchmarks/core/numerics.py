"""Portable CPU numerics: the same run gives the same bits on every x86-64 machine with AVX2.

PyTorch picks CPU kernels by the processor's instruction sets: ATen's vectorized kernels by its CPU
capability (AVX2 or AVX-512), oneDNN's convolutions by the widest ISA it finds, MKL's BLAS by its own
dispatch. Other kernels sum in other orders, and 15 epochs turn the last bits into points of accuracy.
The portable mode pins each of them to AVX2 and fixes the number of intra-op threads (chunking of
parallel reductions depends on it), so a run computes the same on an AVX-512 server and on an
AVX2-only laptop. ``docs/performance.md`` lists what was measured: which knobs change results and
what the mode costs.

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
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility (BLAS)
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
        if pinned and "torch" in sys.modules:
            raise RuntimeError("portable numerics must be configured before torch is imported")
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


def cpu_flags() -> list[str]:
    """The instruction-set flags among :data:`ISA_FLAGS` that this processor reports."""
    present = set((cpuinfo_field("flags", "Features") or "").split())
    return [flag for flag in ISA_FLAGS if flag in present]


def hardware_record() -> dict[str, Any]:
    """What decides a CPU run's bits: processor, ISA flags, torch's CPU capability, mode, threads."""
    import torch

    return {
        "cpu": cpu_model(),
        "isa": cpu_flags(),
        "machine": platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numerics": current_mode(),
        "threads": torch.get_num_threads(),
        "pinned": {k: os.environ.get(k) for k in PORTABLE_ENVIRONMENT},
    }
