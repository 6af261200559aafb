"""Freed memory kept in the process (benchmarks.core.allocator): page faults of repeated steps, in
this process and in the processes it starts, against glibc's default; the mode's checks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.core import allocator

# Three tensors like a step's activations (40, 8 and 3 MB), freed, six times: the page faults of each step.
STEPS = """
import json, resource, sys
import torch

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

counts = []
for _ in range(6):
    before = faults()
    xs = [torch.ones(n) for n in (10_000_000, 2_000_000, 750_000)]
    total = sum(float(x.sum()) for x in xs)
    del xs
    counts.append(faults() - before)
print(json.dumps(counts))
"""

glibc_only = pytest.mark.skipif(allocator._glibc() is None or not sys.platform.startswith("linux"),
                                reason="glibc on Linux")


def step_faults(prelude: str, env: dict[str, str]) -> list[int]:
    out = subprocess.run([sys.executable, "-c", prelude + STEPS], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (allocator.VARIABLE, "GLIBC_TUNABLES")}
    return {**env, **extra}


@glibc_only
def test_kept_memory_is_not_faulted_in_again_and_the_system_default_is():
    configure = "from benchmarks.core import allocator; allocator.configure()\n"
    kept = step_faults(configure, clean_env())
    system = step_faults(configure, clean_env(GEOMREG_MALLOC="system"))
    pages = (40e6 + 8e6 + 3e6) / 4096
    assert sum(kept[-3:]) < 0.05 * pages  # 0 here: the steps re-use the first steps' pages
    assert min(system[-3:]) > 0.5 * pages  # the 40 MB block is handed back and faulted in every step


@glibc_only
def test_the_processes_it_starts_keep_freed_memory_too():
    parent = ("import os, subprocess, sys\nfrom benchmarks.core import allocator\nallocator.configure()\n"
              f"sys.exit(subprocess.run([sys.executable, '-c', {STEPS!r}]).returncode)\n")
    out = subprocess.run([sys.executable, "-c", parent], env=clean_env(), capture_output=True, text=True, check=True)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert sum(child[-3:]) < 0.05 * (40e6 + 8e6 + 3e6) / 4096


def test_a_childs_tunables_keep_the_ones_already_set(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=5:glibc.rtld.nns=2")
    ours = f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={allocator.KEEP_TRIM_BYTES}"
    assert allocator.child_environment("keep") == {"GEOMREG_MALLOC": "keep",
                                                   "GLIBC_TUNABLES": f"glibc.rtld.nns=2:{ours}"}
    monkeypatch.setenv("GLIBC_TUNABLES", f"glibc.rtld.nns=2:{ours}")
    assert allocator.child_environment("system") == {"GEOMREG_MALLOC": "system", "GLIBC_TUNABLES": "glibc.rtld.nns=2"}


def test_an_unknown_mode_names_the_variable(monkeypatch):
    monkeypatch.setenv(allocator.VARIABLE, "jemalloc")
    with pytest.raises(ValueError, match=r"\$GEOMREG_MALLOC must be one of keep, system, got 'jemalloc'"):
        allocator.configure()


def test_the_system_mode_changes_nothing_and_is_recorded(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", allocator.child_environment("keep")["GLIBC_TUNABLES"])
    monkeypatch.setenv(allocator.VARIABLE, "system")
    assert allocator.configure() == "system"  # and a child it starts does not inherit the kept setting
    assert "GLIBC_TUNABLES" not in os.environ and allocator.current_mode() == "system"


def test_the_system_mode_refuses_a_process_started_keeping_freed_memory():
    """glibc applies GLIBC_TUNABLES when a process starts: asked for glibc's default afterwards, the
    process would keep freed memory yet record ``system``."""
    keep = allocator.child_environment("keep")["GLIBC_TUNABLES"]
    script = "from benchmarks.core import allocator; print(allocator.configure())"
    for tunables, refused in ((f"glibc.rtld.nns=2:{keep}", True), ("glibc.malloc.mmap_max=0", False)):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=clean_env(GLIBC_TUNABLES=tunables, GEOMREG_MALLOC="system"))
        assert (out.returncode != 0) == refused, out.stderr
        if refused:
            assert f"$GEOMREG_MALLOC=system, but this process started with GLIBC_TUNABLES={tunables}" in out.stderr
        else:  # one of the two tunables alone does not keep a freed heap top
            assert out.stdout.strip() == "system"
