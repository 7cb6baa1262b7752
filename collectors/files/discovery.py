"""Finds the files to follow: include globs minus exclude globs, skipping files idle too long."""

from __future__ import annotations

import fnmatch
import glob
import os
import time
from pathlib import Path


def discover(includes: list[str], excludes: list[str], ignore_older: float = 0.0) -> list[Path]:
    """Regular files matching any include and no exclude; symlinks are kept (resolved by identity)."""
    now = time.time()
    found: dict[str, Path] = {}
    for pattern in includes:
        for name in glob.iglob(pattern, recursive=True):
            if any(fnmatch.fnmatch(name, ex) for ex in excludes):
                continue
            try:
                st = os.stat(name)
            except OSError:
                continue
            if not os.path.isfile(name):
                continue
            if ignore_older and now - st.st_mtime > ignore_older:
                continue
            found[name] = Path(name)
    return sorted(found.values())
