"""Finds the files to follow: include globs minus exclude globs, skipping files idle too long.

Besides the matching files it reports two things the collector needs to lose nothing:
- rotated siblings (`0.log.20250610-082541`, `app.log.1`) of matching paths, which the globs no
  longer match once kubelet or logrotate renamed them; the collector reads those it has a
  checkpoint for, or that were rotated after it last ran, to their end;
- the directories to watch with inotify: the glob's fixed root and every directory level its
  wildcards can match, so a new pod directory is seen as soon as it appears.

A scan lists each directory once (`Listings`); with a `ListingCache` kept between scans, a directory
whose stat is what it was at an earlier listing is not listed again (a node's 1,000 pod directories
cost 2,000 listings a rescan, about half of its CPU, though between rescans hardly any changes).
"""

from __future__ import annotations

import contextlib
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


def _regular(name: str) -> tuple[os.stat_result, bool] | None:
    """The stat of `name` (symlinks followed) if it is a regular file, and whether `name` is a symlink:
    one lstat for a plain file (a node's 1,000 pod logs cost a stat and an lstat each a scan before)."""
    try:
        st = os.lstat(name)
        link = stat.S_ISLNK(st.st_mode)
        if link:
            st = os.stat(name)
    except OSError:
        return None
    return (st, link) if stat.S_ISREG(st.st_mode) else None


@dataclass(frozen=True)
class _Listing:
    stamp: tuple[int, int, int, int]  # the directory's st_dev, st_ino, st_mtime_ns, st_ctime_ns before the listing
    names: list[str]  # every entry
    subdirectories: list[str] | None  # entries that are directories; None if one is a symlink (its target may change)
    settled: bool  # the directory had not changed for ListingCache.SETTLED_NS when the stat was taken
    matches: dict[tuple[str, bool], list[str]] = field(default_factory=dict, compare=False)  # see Listings.matching


class ListingCache:
    """Directory listings kept from one scan to the next. Adding, removing or renaming an entry changes
    a directory's mtime, so a directory whose stat (device, inode, mtime, ctime) is what it was before
    an earlier listing still holds what that listing found. Only listings of directories that had not
    changed for SETTLED_NS are kept: a change within the clock tick of the stat taken before the listing
    could leave the mtime as it was (timestamps are coarse: a jiffy, on some filesystems 1 or 2 s).
    Whether a symlinked entry names a directory is not kept (its target can change without its parent
    changing)."""

    SETTLED_NS = 2_000_000_000

    def __init__(self) -> None:
        self._kept: dict[str, _Listing] = {}

    def take(self, directory: str, stamp: tuple[int, int, int, int]) -> _Listing | None:
        kept = self._kept.get(directory)
        return kept if kept is not None and kept.stamp == stamp else None

    def keep(self, listed: dict[str, _Listing | None]) -> None:
        """What a scan listed becomes what the next one may reuse (directories it did not list are forgotten)."""
        self._kept = {directory: listing for directory, listing in listed.items()
                      if listing is not None and listing.settled}


class Listings:
    """What each directory holds, listed once a scan, and with a cache not listed again while unchanged."""

    def __init__(self, cache: ListingCache | None = None) -> None:
        self.cache = cache
        self.listed: dict[str, _Listing | None] = {}  # None: it could not be listed

    def names(self, directory: str) -> list[str]:
        listing = self._listing(directory)
        return listing.names if listing is not None else []

    def matching(self, directory: str, part: str, last: bool) -> list[str]:
        """Paths in `directory` whose names match the wildcard `part` as glob matches them (a leading dot
        only by a pattern starting with one); only directories unless `last`. Kept with the listing."""
        listing = self._listing(directory)
        if listing is None:
            return []
        found = listing.matches.get((part, last))
        if found is not None:
            return found
        kept = last or listing.subdirectories is not None
        if last:
            names = listing.names
        elif listing.subdirectories is not None:
            names = listing.subdirectories
        else:  # a symlinked entry: whether it names a directory is looked at each time
            names = [name for name in listing.names if os.path.isdir(os.path.join(directory, name))]
        if not part.startswith("."):
            names = [name for name in names if not name.startswith(".")]
        found = [os.path.join(directory, name) for name in fnmatch.filter(names, part)]
        if kept:
            listing.matches[(part, last)] = found
        return found

    def _listing(self, directory: str) -> _Listing | None:
        if directory in self.listed:
            return self.listed[directory]
        listing = None
        with contextlib.suppress(OSError):
            now = time.time_ns()
            st = os.stat(directory or os.curdir)
            stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            listing = self.cache.take(directory, stamp) if self.cache is not None else None
            if listing is None:
                settled = now - max(st.st_mtime_ns, st.st_ctime_ns) >= ListingCache.SETTLED_NS
                listing = _list(directory, stamp, settled)
        self.listed[directory] = listing
        return listing

    def done(self) -> None:
        if self.cache is not None:
            self.cache.keep(self.listed)


def _list(directory: str, stamp: tuple[int, int, int, int], settled: bool) -> _Listing:
    names: list[str] = []
    subdirectories: list[str] | None = []
    with os.scandir(directory or os.curdir) as entries:
        for entry in entries:
            names.append(entry.name)
            if subdirectories is not None:
                if entry.is_symlink():
                    subdirectories = None
                elif _is_dir(entry):
                    subdirectories.append(entry.name)
    return _Listing(stamp, names, subdirectories, settled)


def _siblings(base: str, listings: Listings) -> list[str]:
    """What `glob(escape(base) + ".*")` finds (`base.<anything>`), each directory listed once per scan."""
    directory, stem = os.path.split(base)
    prefix = stem + "."
    return [os.path.join(directory, name) for name in listings.names(directory) if name.startswith(prefix)]


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


def walk(pattern: str, listings: Listings) -> tuple[list[str], set[str]] | None:
    """What `glob(pattern)` and `watch_directories(pattern)` give, in one walk that lists each directory
    once (the two globs and a sibling glob per file listed a node's pod directories four times); the
    last level's listings stay in `listings` for the rotated siblings. None for a pattern it does
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
            found.extend(listings.matching(directory, part, last))
        if last:
            return found, directories
        level = found
        directories.update(found)
    return [], directories


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def discover(includes: list[str], excludes: list[str], ignore_older: float = 0.0,
             cache: ListingCache | None = None) -> Scan:
    """Regular files matching an include and no exclude, their rotated siblings, and directories to watch
    (`cache`: the listings of earlier scans, reused for directories that did not change since)."""
    now = time.time()
    scan = Scan()
    seen: set[str] = set()
    listings = Listings(cache)
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
            regular = _regular(name)
            if regular is None:
                continue
            st, link = regular
            scan.directories.add(os.path.dirname(name) or ".")
            if not ignore_older or now - st.st_mtime <= ignore_older:
                scan.files.append(Found(name, st))
            base = os.path.realpath(name) if link else name
            for sibling in _siblings(base, listings):
                if sibling in seen or sibling.endswith(COMPRESSED) or _excluded(sibling, excludes):
                    continue
                seen.add(sibling)
                found = _regular(sibling)
                if found is not None and (not ignore_older or now - found[0].st_mtime <= ignore_older):
                    scan.files.append(Found(sibling, found[0], rotated=True, origin=name))
    listings.done()
    return scan
