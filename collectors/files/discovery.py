"""Finds the files to follow: include globs minus exclude globs, skipping files idle too long.

Besides the matching files it reports two things the collector needs to lose nothing:
- rotated siblings (`0.log.20250610-082541`, `app.log.1`) of matching paths, which the globs no
  longer match once kubelet or logrotate renamed them; the collector reads those it has a
  checkpoint for, or that were rotated after it last ran, to their end;
- the directories to watch with inotify: the glob's fixed root and every directory level its
  wildcards can match, so a new pod directory is seen as soon as it appears.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")


@dataclass
class Found:
    """One file seen by a scan: its path and stat result (symlinks followed)."""

    path: str
    st: os.stat_result
    rotated: bool = False
    origin: str = ""  # the matching path a rotated sibling was rotated from (multiline joins follow it)


@dataclass
class Scan:
    files: list[Found] = field(default_factory=list)
    directories: set[str] = field(default_factory=set)
    missing_roots: set[str] = field(default_factory=set)  # fixed roots of patterns not there (yet): unwatched


def _excluded(name: str, excludes: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, ex) for ex in excludes)


def _regular(name: str) -> os.stat_result | None:
    try:
        st = os.stat(name)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _siblings(base: str, listings: dict[str, list[str]]) -> list[str]:
    """What `glob(escape(base) + ".*")` finds (`base.<anything>`), each directory listed once per scan."""
    directory, stem = os.path.split(base)
    names = listings.get(directory)
    if names is None:
        try:
            names = listings[directory] = os.listdir(directory or os.curdir)
        except OSError:
            names = listings[directory] = []
    prefix = stem + "."
    return [os.path.join(directory, name) for name in names if name.startswith(prefix)]


def fixed_root(parts: list[str]) -> tuple[int, str]:
    """How many leading parts of a split pattern have no wildcard, and the directory they name."""
    fixed = 0
    while fixed < len(parts) - 1 and not glob.has_magic(parts[fixed]):
        fixed += 1
    return fixed, os.sep.join(parts[:fixed]) or os.sep


def watch_directories(pattern: str) -> set[str]:
    """The fixed root of `pattern` and every directory its wildcard levels match."""
    parts = pattern.split(os.sep)
    fixed, root = fixed_root(parts)
    found = {root} if os.path.isdir(root) else set()
    for level in range(fixed + 1, len(parts)):
        sub = os.sep.join(parts[:level])
        if "**" in sub:
            break
        found.update(d for d in glob.iglob(sub) if os.path.isdir(d))
    return found


def walk(pattern: str, listings: dict[str, list[str]]) -> tuple[list[str], set[str]] | None:
    """What `glob(pattern)` and `watch_directories(pattern)` give, in one walk that lists each directory
    once (the two globs and a sibling glob per file listed a node's pod directories four times); the
    last level's listings are left in `listings` for the rotated siblings. None for a pattern it does
    not take (relative, or with `**`): glob then does it."""
    parts = pattern.split(os.sep)
    if not os.path.isabs(pattern) or "**" in pattern:
        return None
    fixed, root = fixed_root(parts)
    level = [root] if os.path.isdir(root) else []
    directories = set(level)
    for index in range(fixed, len(parts)):
        part, last = parts[index], index == len(parts) - 1
        found: list[str] = []
        for directory in level:
            if not glob.has_magic(part):
                path = os.path.join(directory, part)
                if os.path.isdir(path) if not last else os.path.lexists(path):
                    found.append(path)
                continue
            names = _names(directory, part, last, listings)
            found.extend(os.path.join(directory, name) for name in names)
        if last:
            return found, directories
        level = found
        directories.update(found)
    return [], directories


def _names(directory: str, part: str, last: bool, listings: dict[str, list[str]]) -> list[str]:
    """Names in `directory` matching the wildcard `part` as glob matches them (a leading dot only by a
    pattern starting with one); only directories unless `last`."""
    try:
        with os.scandir(directory) as entries:
            if last:
                names = listings[directory] = [entry.name for entry in entries]
            else:
                names = [entry.name for entry in entries if _is_dir(entry)]
    except OSError:
        return []
    if not part.startswith("."):
        names = [name for name in names if not name.startswith(".")]
    return fnmatch.filter(names, part)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def discover(includes: list[str], excludes: list[str], ignore_older: float = 0.0) -> Scan:
    """Regular files matching an include and no exclude, their rotated siblings, and directories to watch."""
    now = time.time()
    scan = Scan()
    seen: set[str] = set()
    listings: dict[str, list[str]] = {}
    for pattern in includes:
        root = fixed_root(pattern.split(os.sep))[1]
        if not os.path.isdir(root):
            scan.missing_roots.add(root)  # nothing there to watch: its creation raises no event
        walked = walk(pattern, listings)
        if walked is None:
            scan.directories |= watch_directories(pattern)
            names: Iterable[str] = glob.iglob(pattern, recursive=True)
        else:
            names, directories = walked
            scan.directories |= directories
        for name in names:
            if name in seen or _excluded(name, excludes):
                continue
            seen.add(name)
            st = _regular(name)
            if st is None:
                continue
            scan.directories.add(os.path.dirname(name) or ".")
            if not ignore_older or now - st.st_mtime <= ignore_older:
                scan.files.append(Found(name, st))
            base = os.path.realpath(name) if os.path.islink(name) else name
            for sibling in _siblings(base, listings):
                if sibling in seen or sibling.endswith(COMPRESSED) or _excluded(sibling, excludes):
                    continue
                seen.add(sibling)
                sst = _regular(sibling)
                if sst is not None and (not ignore_older or now - sst.st_mtime <= ignore_older):
                    scan.files.append(Found(sibling, sst, rotated=True, origin=name))
    return scan
