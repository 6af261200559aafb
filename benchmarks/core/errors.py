"""Expected failures and the exit codes the command line gives them (listed in docs/datasets.md).

Every expected failure ends a command with one line on stderr, never a traceback:

* 0: done;
* 1: the data cannot reproduce the tables (clips missing or unreadable beyond the allowance, a class
  absent from a split, no listed clip found);
* 2: usage or configuration error (an unknown option or key, a folder that does not exist or holds
  no accepted layout, a malformed split list);
* 3: runs of a grid failed or ended without a record (the rest of the grid still ran);
* 4: a folder or file cannot be read or written (permissions, a read-only or full disk);
* 130: interrupted (Ctrl-C, or SIGTERM while a cache is prepared).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

OK, DATA_NOT_SUFFICIENT, USAGE, RUNS_FAILED, FILESYSTEM, INTERRUPTED = 0, 1, 2, 3, 4, 130


class DataNotSufficient(Exception):
    """This copy of a dataset cannot give the tables (the message says why and what to do)."""


def require_writable(folder: Path, role: str) -> None:
    """Create ``folder`` if needed and check that it can be written, so that a read-only place fails
    at once with one message naming it (``role``, e.g. "cache folder (set cache_dir)")."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise PermissionError(err.errno, f"cannot create the {role}", str(folder)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"the {role} is not writable", str(folder))
