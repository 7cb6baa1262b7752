"""Linux inotify through ctypes, read from the event loop without blocking it.

Directory events (create, move, delete) wake the collector at once, so a file created and rotated
between two rescans is still opened while it is at its path; the periodic rescan stays the safety net
(queue overflow, watch limits, non-Linux systems). Only "something changed" is reported: the
collector rescans, which is cheap and leaves no event-ordering subtleties.
Writes (IN_MODIFY, which a directory watch reports with the file's name; a truncation too) trigger no
rescan and never wake the loop: they go to a second inotify instance that only `take_modified` reads,
once a read pass, and the pass reads only the files written instead of looking at every followed file.
(One instance for both woke the loop for writes, at most every 50 ms with a re-arm dance: on a node of
1,000 pods each writing 2 lines a second, 19 wake-ups a second, each an add_reader, a remove_reader and a
timer, for events the pass would drain anyway.)
After a queue overflow, or while a directory could not be watched, `take_modified` answers None:
the pass must look at every file. `take_writes(False)` stops the write events (while nearly every file
is written between two passes they only cost, collectors/files/write_events.py): every pass then looks
at every file, and so does the first after `take_writes(True)`.
Two instances serve every directory (syslog-ng's instance per directory ran out at 128); each watched
directory takes a watch in each while write events are taken (`fs.inotify.max_user_watches`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import struct

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
DIR_EVENTS = IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF | IN_ATTRIB
PATHS_KEPT = 65536  # written files' paths remembered by (watch, name)
_EVENT = struct.Struct("iIII")  # struct inotify_event without its name: wd, mask, cookie, len


class _Watches:
    """One inotify instance watching directories for `mask`: each directory's spelling -> watch
    descriptor, and each descriptor -> the directory's real path."""

    def __init__(self, libc: ctypes.CDLL, mask: int) -> None:
        self.libc, self.mask = libc, mask
        self.fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))  # -1: unavailable (errno says why)
        self.watched: dict[str, int] = {}
        self.directories: dict[int, str] = {}

    def add(self, directory: str) -> int:
        """Watch `directory`; 0, or the errno that kept it from being watched."""
        wd = int(self.libc.inotify_add_watch(self.fd, os.fsencode(directory), self.mask))
        if wd < 0:
            return ctypes.get_errno() or errno.EINVAL
        self.watched[directory] = wd
        self.directories[wd] = os.path.realpath(directory)
        return 0

    def remove(self, directory: str) -> None:
        wd = self.watched.pop(directory)
        self.libc.inotify_rm_watch(self.fd, wd)
        if wd not in self.watched.values():  # two spellings of one directory share a descriptor
            self.directories.pop(wd, None)

    def read(self) -> list[bytes]:
        """The events queued now, as read."""
        reads: list[bytes] = []
        try:
            while True:
                data = os.read(self.fd, 64 * 1024)
                if not data:
                    break
                reads.append(data)
        except BlockingIOError:
            pass
        return reads

    def close(self) -> None:
        os.close(self.fd)
        self.fd = -1
        self.watched.clear()
        self.directories.clear()


class DirectoryWatcher:
    """Watches directories; `changed` is set whenever one of them gained, lost or renamed an entry,
    and the files written in them since the last `take_modified` are remembered."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.errors = 0
        self._entries: _Watches | None = None  # entry events: read by the event loop as they come
        self._writes: _Watches | None = None  # write events: read by take_modified only
        self._writes_on = True
        self._modified: set[str] = set()
        self._paths: dict[tuple[int, bytes], str] = {}  # (watch descriptor, raw name) -> real path
        self._overflowed = False
        self._unwatched: set[str] = set()  # directories the last `watch` could not watch
        self._writes_unknown = False  # write events were turned on since the last take_modified
        name = ctypes.util.find_library("c")
        if name is None:
            return
        libc = ctypes.CDLL(name, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            return
        entries = _Watches(libc, DIR_EVENTS)
        if entries.fd < 0:
            log.warning("inotify unavailable (%s); relying on the periodic rescan",
                        os.strerror(ctypes.get_errno()))
            return
        self._entries = entries
        writes = _Watches(libc, IN_MODIFY)
        if writes.fd < 0:
            log.warning("inotify unavailable for writes (%s); every read pass looks at every file",
                        os.strerror(ctypes.get_errno()))
        else:
            self._writes = writes
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(entries.fd, self._drain_entries)

    @property
    def active(self) -> bool:
        return self._entries is not None

    @property
    def takes_writes(self) -> bool:
        """Whether writes are reported (`take_modified` can name the files written)."""
        return self._writes is not None and self._writes_on

    def take_writes(self, on: bool) -> None:
        """Take write events (IN_MODIFY) in every watched directory, or stop taking them; entry events
        are taken either way. Writes made while they were off are not known, so after turning them on
        `take_modified` answers None once."""
        writes = self._writes
        if writes is None or self._entries is None or on == self._writes_on:
            return
        self._writes_on = on
        if on:
            self._writes_unknown = True  # turned back on: the writes made meanwhile were not reported
            self._add_missing_writes(set())
            return
        for directory in list(writes.watched):
            writes.remove(directory)
        writes.read()  # the writes queued until now, and the removals' events: not wanted
        self._paths.clear()  # descriptors are given again
        self._modified.clear()

    def _add_missing_writes(self, fresh: set[str]) -> None:
        """While writes are taken, a write watch for each directory watched for entries that has none: those
        just added (`fresh`) and those whose write watch failed before (tried again at each `watch`, as a
        directory that could not be watched at all). Writes in the latter went unreported until now, so
        the next `take_modified` answers None."""
        writes, entries = self._writes, self._entries
        if writes is None or entries is None or not self._writes_on:
            return
        for directory in entries.watched.keys() - writes.watched.keys():
            if not self._failed(directory, writes.add(directory)) and directory not in fresh:
                self._writes_unknown = True

    def _failed(self, directory: str, err: int) -> bool:
        """Whether a watch of `directory` failed (`err`); a vanished directory is no error (a rescan
        follows its removal)."""
        if not err:
            return False
        if err != errno.ENOENT:
            self.errors += 1
            self._unwatched.add(directory)
            log.warning("cannot watch %s (%s); the rescan still finds its files", directory, os.strerror(err))
        return True

    @property
    def complete(self) -> bool:
        """Active and watching every directory it was asked to: entries and writes are all reported."""
        return self._entries is not None and not self._unwatched

    def watch(self, directories: set[str]) -> bool:
        """Watch exactly `directories` (adds new ones, forgets the rest); whether a directory is watched now
        that was not before (one that could not be watched, or vanished, is not)."""
        entries = self._entries
        if entries is None:
            return False
        before = set(entries.watched)
        self._unwatched = set()
        for gone in before - directories:
            self._paths.clear()  # its watch descriptor may be given to another directory
            entries.remove(gone)
            if self._writes is not None and gone in self._writes.watched:
                self._writes.remove(gone)
        fresh = directories - before
        for directory in fresh:
            self._failed(directory, entries.add(directory))
        self._add_missing_writes(fresh)
        return not entries.watched.keys() <= before

    def take_modified(self) -> set[str] | None:
        """Real paths of the files written (or truncated) in watched directories since the last call;
        None when that is not known for every followed file (inotify inactive, a queue overflow, a
        directory that could not be watched, write events off now or since the last call): then every
        file must be looked at."""
        if self._entries is None:
            return None
        self._drain_entries()  # entry events up to now, not only those the loop got round to
        if self._writes is not None and self._writes_on:
            for data in self._writes.read():
                self._parse_writes(data)
        modified, self._modified = self._modified, set()
        if self._overflowed or self._unwatched or self._writes_unknown or not self.takes_writes:
            self._overflowed = self._writes_unknown = False
            return None
        return modified

    def _drain_entries(self) -> None:
        """Entry events (and overflows) ask for a rescan; which entry changed is not needed."""
        assert self._entries is not None
        reads = self._entries.read()
        if not reads:
            return
        for data in reads:
            offset = 0
            while offset + 16 <= len(data):
                _wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                offset += 16 + size
                if mask & IN_Q_OVERFLOW:
                    self.errors += 1
                    self._overflowed = True  # entries were lost: writes may have been lost with them
        self.changed.set()

    def _parse_writes(self, data: bytes) -> None:
        """Remember written files. struct inotify_event: wd, mask, cookie, len, name (NUL-padded). A busy
        node writes thousands of lines a second, each an event: a written file's path is looked up by
        (watch, raw name) rather than built again. An overflow (writes lost) makes the pass look at every
        file; no rescan is needed for it (entries have their own queue). Removed watches' events are
        nothing to report."""
        assert self._writes is not None
        offset, end = 0, len(data)
        directories, modified, paths = self._writes.directories, self._modified, self._paths
        unpack = _EVENT.unpack_from
        while offset + 16 <= end:
            wd, mask, _cookie, size = unpack(data, offset)
            start, offset = offset + 16, offset + 16 + size
            if mask == IN_MODIFY and size:
                key = (wd, data[start:offset])
                path = paths.get(key)
                if path is None:
                    directory = directories.get(wd)
                    if directory is None:
                        continue
                    if len(paths) >= PATHS_KEPT:
                        paths.clear()
                    path = paths[key] = os.path.join(directory, os.fsdecode(key[1].rstrip(b"\0")))
                modified.add(path)
            elif mask & IN_Q_OVERFLOW:
                self._overflowed = True

    def close(self) -> None:
        if self._entries is not None:
            self._loop.remove_reader(self._entries.fd)
            self._entries.close()
            self._entries = None
        if self._writes is not None:
            self._writes.close()
            self._writes = None
