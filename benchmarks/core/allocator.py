"""Freed memory stays in the process: a training step re-uses the pages of the step before it.

PyTorch's CPU tensors are plain ``malloc`` blocks. glibc hands every freed block over 32 MB, and a free
top of its heap beyond a threshold, straight back to the system, so each step faults the same memory in
again, a 4 KiB page at a time: a ResNet-18 step at CREMA-D's shapes (batch 16) takes about 215 000 page
faults, DAGR's exact step, whose three pull-backs hold more memory at once, about 600 000, at some 3 µs
each on a 2-core AMD EPYC (docs/performance.md). With ``keep`` (the default) glibc serves every block
from its heap and keeps what is freed: after the first step a step faults in almost nothing, and the
process stays at its peak resident size (a heap never trimmed raises it a little: 1988 against 1802 MB
for that joint-training step).

This changes where blocks lie, never what is computed (tensors stay 64-byte aligned). It is a process
setting, so the command line makes it (:func:`configure`), in this process by ``mallopt`` and for the
processes it starts by ``GLIBC_TUNABLES`` (read when a process starts). ``GEOMREG_MALLOC=system``
opts out (an error in a process that started with those tunables: glibc applied them already); other C
libraries are left as they are. This module must not import torch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

VARIABLE = "GEOMREG_MALLOC"
MODES = ("keep", "system")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt's parameters (malloc.h)
KEEP_TRIM_BYTES = 2**31 - 1  # the most mallopt takes (an int): a free heap top up to 2 GiB is kept
KEEP_TUNABLES = {"glibc.malloc.mmap_max": "0", "glibc.malloc.trim_threshold": str(KEEP_TRIM_BYTES)}
# What glibc applied when this process started (``configure`` changes the variable for its children only;
# /proc/self/environ cannot say: glibc's parser cuts the string there).
START_TUNABLES = os.environ.get("GLIBC_TUNABLES", "")


def configure(mode: str | None = None) -> str:
    """Choose the mode (argument, else ``$GEOMREG_MALLOC``, else ``keep``), apply it to this process
    and export it to the processes it starts. Returns what applies: ``keep``, or ``system`` (asked for,
    or a C library other than glibc)."""
    mode = mode or os.environ.get(VARIABLE) or "keep"
    if mode not in MODES:
        raise ValueError(f"${VARIABLE} must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "system" and _keeps(START_TUNABLES):
        raise ValueError(f"${VARIABLE}=system, but this process started with GLIBC_TUNABLES={START_TUNABLES}, which "
                         "glibc read at start and which keep freed memory: start it without them (or use keep)")
    libc = _glibc()
    if libc is None:
        mode = "system"
    elif mode == "keep" and not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_BYTES)):
        raise OSError("glibc's mallopt refused M_MMAP_MAX=0 or M_TRIM_THRESHOLD")
    os.environ.update(child_environment(mode))
    if not os.environ["GLIBC_TUNABLES"]:
        del os.environ["GLIBC_TUNABLES"]
    return mode


def child_environment(mode: str) -> dict[str, str]:
    """The variables that start a process in ``mode`` (glibc reads its tunables only at start, so a
    ``system`` child of a ``keep`` process must not inherit them); an empty value means none."""
    pairs = [item.split("=", 1) for item in os.environ.get("GLIBC_TUNABLES", "").split(":") if "=" in item]
    tunables = [f"{k}={v}" for k, v in pairs if k not in KEEP_TUNABLES]
    if mode == "keep":
        tunables += [f"{k}={v}" for k, v in KEEP_TUNABLES.items()]
    return {VARIABLE: mode, "GLIBC_TUNABLES": ":".join(tunables)}


def current_mode() -> str:
    """What :func:`configure` applied to this process's family, else ``system`` (a library user)."""
    return "keep" if os.environ.get(VARIABLE) == "keep" else "system"


def _keeps(tunables: str) -> bool:
    """Whether these tunables include the ones that keep freed memory."""
    return set(KEEP_TUNABLES.items()) <= {tuple(item.split("=", 1)) for item in tunables.split(":") if "=" in item}


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc
