"""Linux inotify through ctypes, read from the event loop without blocking it.

Directory events (create, move, delete) wake the collector at once, so a file created and
rotated between two rescans is still opened while it is at its path; the periodic rescan stays
the safety net (queue overflow, watch limits, non-Linux systems). Only "something changed" is
reported: the collector rescans, which is cheap and leaves no event-ordering subtleties.
One inotify instance serves every directory (syslog-ng's instance per directory ran out at 128).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os

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


class DirectoryWatcher:
    """Watches directories; `changed` is set whenever one of them gained, lost or renamed an entry."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.errors = 0
        self._fd = -1
        self._watched: dict[str, int] = {}
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
        asyncio.get_running_loop().add_reader(fd, self._drain)

    @property
    def active(self) -> bool:
        return self._fd >= 0

    def watch(self, directories: set[str]) -> None:
        """Watch exactly `directories` (adds new ones, forgets the rest)."""
        if self._libc is None:
            return
        for gone in set(self._watched) - directories:
            self._libc.inotify_rm_watch(self._fd, self._watched.pop(gone))
        for directory in directories - set(self._watched):
            wd = int(self._libc.inotify_add_watch(self._fd, os.fsencode(directory), DIR_EVENTS))
            if wd < 0:
                err = ctypes.get_errno()
                if err != errno.ENOENT:
                    self.errors += 1
                    log.warning("cannot watch %s (%s); the rescan still finds its files", directory,
                                os.strerror(err))
                continue
            self._watched[directory] = wd

    def _drain(self) -> None:
        try:
            while True:
                data = os.read(self._fd, 64 * 1024)
                if not data:
                    break
                if _overflowed(data):
                    self.errors += 1
        except BlockingIOError:
            pass
        self.changed.set()

    def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._watched.clear()


def _overflowed(data: bytes) -> bool:
    """True if the event buffer holds IN_Q_OVERFLOW (struct inotify_event: wd, mask, cookie, len, name)."""
    offset = 0
    while offset + 16 <= len(data):
        mask = int.from_bytes(data[offset + 4:offset + 8], "little")
        if mask & IN_Q_OVERFLOW:
            return True
        offset += 16 + int.from_bytes(data[offset + 12:offset + 16], "little")
    return False
