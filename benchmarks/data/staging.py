"""Cache folders are written under a temporary name and renamed into place when complete.

A folder being written is ``.<name>.tmp-<random>`` next to its final place and holds a ``.lock``
file that its writer keeps locked (``flock``) until the rename. A writer killed outright (SIGKILL,
power loss) leaves its partial folder behind; the lock dies with the process, so the next prepare
in the same place removes it. SIGTERM ends a writer as Ctrl-C does, removing the folder at once.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"
# Only the partial folders this module writes: ".<dataset>-<layout>-<12 hex>.tmp-<random>".
TEMP_NAME = re.compile(r"^\.[a-z0-9_]+-[a-z0-9_]+-[0-9a-f]{12}\.tmp-")
UNLOCKED_GRACE_S = 60  # a partial folder without a lock file may be a writer's first instant


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A locked temporary folder next to ``final``, removed on exit unless it was published."""
    temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    with open(temp / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with sigterm_as_interrupt():
                yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)


def publish(temp: Path, final: Path, keep_existing: Callable[[Path], bool]) -> None:
    """Rename the complete ``temp`` to ``final``. An existing ``final`` is replaced unless
    ``keep_existing(final)`` (a concurrent writer of the same content finished first)."""
    (temp / LOCK).unlink()
    temp.chmod(0o777 & ~current_umask())  # mkdtemp makes it private; a cache may be shared
    if final.exists():
        if keep_existing(final):
            return
        old = final.with_name(f"{temp.name}-replaced")  # a temp name: cleaned up if we die now
        os.rename(final, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(temp, final)
    except OSError:
        if not (final.exists() and keep_existing(final)):
            raise


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the partial folders under ``folder`` that no running writer holds; returns them."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if TEMP_NAME.match(p.name) and p.is_dir() and not in_use(p)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():  # a read-only cache folder keeps it, and says nothing
            print(f"removed {path}, the partial folder of an interrupted prepare", file=sys.stderr)
    return stale


def in_use(temp: Path) -> bool:
    try:
        fd = os.open(temp / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        try:
            return time.time() - temp.stat().st_mtime < UNLOCKED_GRACE_S
        except FileNotFoundError:
            return True  # removed meanwhile by another prepare: nothing to do
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does (signals reach the main thread only)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
