"""Log writers for the file collector's tests: steady CRI writers that rotate like kubelet or logrotate."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.collectors.file_helpers import cri


def seq_line(n: int) -> bytes:
    return b'{"traceId":"t%d","seq":%d,"pad":"%s"}' % (n % 97, n, b"x" * 40)


def write_lines(path: Path, first: int, count: int) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(cri(seq_line(n)) for n in range(first, first + count)))


class RotatingWriter(threading.Thread):
    """Writes `total` numbered lines at `rate` lines/s, rotating every `rotate_every` lines.

    `mode` is "rename" (kubelet: `0.log` -> `0.log.<n>`, new `0.log`) or "copytruncate". `during`,
    if given, is called with the rotation's number and "copied" between the copy and the truncation,
    and with "truncated" after it (e.g. to kill the collector mid-rotation).
    """

    def __init__(self, path: Path, total: int, rate: float, rotate_every: int, mode: str = "rename",
                 during: Callable[[int, str], None] | None = None, first: int = 0) -> None:
        super().__init__(daemon=True)
        self.path, self.total, self.rate, self.rotate_every, self.mode = path, total, rate, rotate_every, mode
        self.during = during or (lambda rotation, step: None)
        self.rotations = 0
        self.first = self.written = first  # numbers first..total-1 are written

    def run(self) -> None:
        started = time.monotonic()
        batch = max(1, int(self.rate / 100))
        since_rotation = 0
        while self.written < self.total:
            count = min(batch, self.total - self.written, self.rotate_every - since_rotation)
            write_lines(self.path, self.written, count)
            self.written += count
            since_rotation += count
            if since_rotation >= self.rotate_every and self.written < self.total:
                self.rotate()
                since_rotation = 0
            ahead = started + (self.written - self.first) / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def rotate(self) -> None:
        self.rotations += 1
        rotate_file(self.path, self.rotations, self.mode, self.during)


def rotate_file(path: Path, number: int, mode: str, during: Callable[[int, str], None]) -> None:
    """Rotate `path` to `<path>.<number>`: by "rename" (kubelet), or by "copytruncate" (logrotate), calling
    `during(number, "copied")` between the copy and the truncation and `during(number, "truncated")` after."""
    rotated = path.with_name(f"{path.name}.{number:06d}")
    if mode == "rename":
        os.rename(path, rotated)
    else:
        shutil.copyfile(path, rotated)
        during(number, "copied")
        os.truncate(path, 0)
        during(number, "truncated")
