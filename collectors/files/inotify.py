"""Linux inotify through ctypes, read from the event loop without blocking it.

Directory events (create, move, delete) wake the collector at once (within REARM_SECONDS), so a
file created and rotated between two rescans is still opened while it is at its path; the periodic rescan stays
the safety net (queue overflow, watch limits, non-Linux systems). Only "something changed" is
reported: the collector rescans, which is cheap and leaves no event-ordering subtleties.
Writes (IN_MODIFY, which a directory watch reports with the file's name; a truncation too) trigger
no rescan and wake the loop at most every REARM_SECONDS: their paths are gathered, and the next
read pass reads only those files instead of looking at every followed file (`take_modified`).
After a queue overflow, or while a directory could not be watched, `take_modified` answers None:
the pass must look at every file. `take_writes(False)` stops the write events (while nearly every file
is written between two passes they only cost, collectors/files/write_events.py): every pass then looks
at every file, and so does the first after `take_writes(True)`.
One inotify instance serves every directory (syslog-ng's instance per directory ran out at 128).
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
WATCHED_EVENTS = DIR_EVENTS | IN_MODIFY
REARM_SECONDS = 0.05  # after a wake for writes only, how long the loop is not woken by events
PATHS_KEPT = 65536  # written files' paths remembered by (watch, name)
_EVENT = struct.Struct("iIII")  # struct inotify_event without its name: wd, mask, cookie, len


class DirectoryWatcher:
    """Watches directories; `changed` is set whenever one of them gained, lost or renamed an entry,
    and the files written in them since the last `take_modified` are remembered."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.errors = 0
        self._fd = -1
        self._watched: dict[str, int] = {}
        self._directories: dict[int, str] = {}  # watch descriptor -> directory (real path)
        self._modified: set[str] = set()
        self._paths: dict[tuple[int, bytes], str] = {}  # (watch descriptor, raw name) -> real path
        self._overflowed = False
        self._unwatched: set[str] = set()  # directories the last `watch` could not watch
        self._armed = False  # the loop wakes for events
        self._mask = WATCHED_EVENTS  # DIR_EVENTS while write events are not taken (take_writes)
        self._writes_unknown = False  # write events were turned on since the last take_modified
        self._rearm: asyncio.TimerHandle | None = None
        self._libc: ctypes.CDLL | None = None
        name = ctypes.util.find_library("c")
        if name is None:
            return
        libc = ctypes.CDLL(name, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            return
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            log.warning("inotify unavailable (%s); relying on the periodic rescan",
                        os.strerror(ctypes.get_errno()))
            return
        self._libc, self._fd = libc, fd
        self._loop = asyncio.get_running_loop()
        self._arm()

    def _arm(self) -> None:
        self._rearm = None
        if self._fd >= 0 and not self._armed:
            self._loop.add_reader(self._fd, self._wake)
            self._armed = True

    def _wake(self) -> None:
        """The loop woke for events. If they were only writes, stop listening for REARM_SECONDS: on a
        busy node every write would wake the loop, and writes are only needed at the next pass (which
        drains them itself); an entry change then waits at most that long."""
        if not self._drain() and self._armed:
            self._loop.remove_reader(self._fd)
            self._armed = False
            self._rearm = self._loop.call_later(REARM_SECONDS, self._arm)

    @property
    def active(self) -> bool:
        return self._fd >= 0

    @property
    def takes_writes(self) -> bool:
        """Whether writes are reported (`take_modified` can name the files written)."""
        return self._fd >= 0 and self._mask == WATCHED_EVENTS

    def take_writes(self, on: bool) -> None:
        """Take write events (IN_MODIFY) in every watched directory, or stop taking them; entry events
        are taken either way. Writes made while they were off are not known, so after turning them on
        `take_modified` answers None once."""
        mask = WATCHED_EVENTS if on else DIR_EVENTS
        if self._libc is None or mask == self._mask:
            return
        self._mask = mask
        self._writes_unknown = on  # turned back on: the writes made meanwhile were not reported
        for directory in list(self._watched):
            self._add(directory)

    def _add(self, directory: str) -> None:
        """Watch `directory` with the current mask (a watched one gets the new mask, same descriptor)."""
        assert self._libc is not None
        wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(directory), self._mask))
        if wd < 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:
                self.errors += 1
                self._unwatched.add(directory)
                log.warning("cannot watch %s (%s); the rescan still finds its files", directory,
                            os.strerror(err))
            return
        self._watched[directory] = wd
        self._directories[wd] = os.path.realpath(directory)

    @property
    def complete(self) -> bool:
        """Active and watching every directory it was asked to: entries and writes are all reported."""
        return self._fd >= 0 and not self._unwatched

    def watch(self, directories: set[str]) -> bool:
        """Watch exactly `directories` (adds new ones, forgets the rest); whether a directory is watched now
        that was not before (one that could not be watched, or vanished, is not)."""
        if self._libc is None:
            return False
        before = set(self._watched)
        self._unwatched = set()
        for gone in set(self._watched) - directories:
            self._paths.clear()  # its watch descriptor may be given to another directory
            wd = self._watched.pop(gone)
            self._libc.inotify_rm_watch(self._fd, wd)
            if wd not in self._watched.values():  # two spellings of one directory share a descriptor
                self._directories.pop(wd, None)
        for directory in directories - set(self._watched):
            self._add(directory)
        return not self._watched.keys() <= before

    def take_modified(self) -> set[str] | None:
        """Real paths of the files written (or truncated) in watched directories since the last call;
        None when that is not known for every followed file (inotify inactive, a queue overflow, a
        directory that could not be watched, write events off now or since the last call): then every
        file must be looked at."""
        if self._fd < 0:
            return None
        self._drain()  # events of writes made up to now, not only those the loop got round to
        modified, self._modified = self._modified, set()
        if self._overflowed or self._unwatched or self._writes_unknown or self._mask != WATCHED_EVENTS:
            self._overflowed = self._writes_unknown = False
            return None
        return modified

    def _drain(self) -> bool:
        entries = False
        try:
            while True:
                data = os.read(self._fd, 64 * 1024)
                if not data:
                    break
                entries |= self._parse(data)
        except BlockingIOError:
            pass
        if entries:
            self.changed.set()
        return entries

    def _parse(self, data: bytes) -> bool:
        """Remember written files; True if an event other than a write came (an entry changed, an
        overflow, a watch removed). struct inotify_event: wd, mask, cookie, len, name (NUL-padded).
        A busy node writes thousands of lines a second, each an event: a written file's path is looked
        up by (watch, raw name) rather than built again."""
        entries = False
        offset, end = 0, len(data)
        directories, modified, paths = self._directories, self._modified, self._paths
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
            else:
                entries = True
                if mask & IN_Q_OVERFLOW:
                    self.errors += 1
                    self._overflowed = True
        return entries

    def close(self) -> None:
        if self._fd >= 0:
            if self._armed:
                self._loop.remove_reader(self._fd)
            if self._rearm is not None:
                self._rearm.cancel()
            os.close(self._fd)
            self._fd = -1
            self._libc = None
            self._watched.clear()
            self._directories.clear()
