"""Line formats on disk: CRI (containerd, CRI-O), docker json-file, and plain lines.

Each parser turns one physical line into (source time ns, stream, is_partial, content bytes, flags).
CRI: `<RFC3339Nano> <stdout|stderr> <P|F> <content>`; docker: `{"log":"...\\n","stream":..,"time":..}`
where a missing trailing newline in `log` means the line continues in the next record.

A file's format is decided from several lines (a majority), never from the first alone: one
malformed first line must not turn a whole CRI log into `plain`. Files in the kubelet's pod-log
layout are CRI or docker by definition. A CRI line whose timestamp does not parse is kept (the
collection time stands in) and flagged FLAG_BAD_TIME; a line of a CRI file without the prefix is kept
whole and flagged FLAG_BAD_PREFIX, which the parse stage reports as `bad_cri_prefix`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson

from core.models import FLAG_BAD_PREFIX, FLAG_BAD_TIME
from core.timeparse import parse_rfc3339_ns

Format = Literal["cri", "docker", "plain"]
Parsed = tuple[int, str, bool, bytes, int]
DETECT_LINES = 16  # lines a format is decided from


CRI_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
_seconds: dict[bytes, int] = {}
_MIN_NS, _MAX_NS = -(1 << 63), (1 << 63) - 1


def cri_time_ns(stamp: bytes) -> int:
    """Nanoseconds of a CRI timestamp, 0 when it does not parse or lies outside the signed 64-bit range
    that chunks carry (years 1678 to 2262: orjson refuses a larger integer, which failed the whole
    record, and its re-read failed again)."""
    ns = _cri_time_ns(stamp)
    return ns if _MIN_NS <= ns <= _MAX_NS else 0


def _cri_time_ns(stamp: bytes) -> int:
    """Nanoseconds of a CRI timestamp; the second (`YYYY-MM-DDTHH:MM:SS`) is parsed once and cached."""
    if len(stamp) == 30 and stamp[29] == 0x5A and stamp[19] == 0x2E:  # the usual `...SS.nnnnnnnnnZ`
        base = _seconds.get(stamp[:19])
        fraction = stamp[20:29]
        if base is not None and fraction.isdigit():
            return base + int(fraction)
    if len(stamp) >= 20 and stamp[-1] == 0x5A:  # ...Z
        base = _seconds.get(stamp[:19])
        if base is None:
            base = parse_rfc3339_ns(stamp[:19].decode("ascii", "replace") + "Z")
            if base is None:
                return parse_rfc3339_ns(stamp.decode("ascii", "replace")) or 0
            if len(_seconds) > 4096:
                _seconds.clear()
            _seconds[stamp[:19]] = base
        if len(stamp) == 20:
            return base
        fraction = stamp[20:-1]
        if stamp[19] == 0x2E and 0 < len(fraction) <= 9 and fraction.isdigit():
            return base + int(fraction.ljust(9, b"0"))
    return parse_rfc3339_ns(stamp.decode("ascii", "replace")) or 0


def parse_cri(line: bytes) -> Parsed | None:
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stream = CRI_STREAMS.get(parts[1])
    tag = parts[2]
    if stream is None or (tag != b"F" and tag != b"P"):
        return None
    ts = cri_time_ns(parts[0])
    return ts, stream, tag == b"P", parts[3] if len(parts) == 4 else b"", 0 if ts else FLAG_BAD_TIME


def parse_docker(line: bytes) -> Parsed | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("log"), str):
        return None
    text: str = record["log"]
    partial = not text.endswith("\n")
    ts = parse_rfc3339_ns(str(record.get("time", ""))) or 0
    return ts, str(record.get("stream", "stdout")), partial, text.rstrip("\n").encode(), 0


def parse_plain(line: bytes) -> Parsed:
    return 0, "", False, line, 0


def line_format(line: bytes) -> Format:
    """The format one line looks like."""
    if line.startswith(b"{") and parse_docker(line) is not None:
        return "docker"
    if parse_cri(line) is not None:
        return "cri"
    return "plain"


def detect_format(lines: bytes | list[bytes], pod_log: bool = False) -> Format:
    """A file's format from its first lines, by majority (ties: CRI, then docker); a pod log (kubelet
    layout) is CRI or docker whatever its lines look like. Overridable by `collector.format`."""
    sample = [lines] if isinstance(lines, bytes) else lines[:DETECT_LINES]
    votes = {"cri": 0, "docker": 0, "plain": 0}
    for line in sample:
        votes[line_format(line)] += 1
    if pod_log:
        return "docker" if votes["docker"] > votes["cri"] else "cri"
    best = max(votes.values())
    return next(fmt for fmt in ("cri", "docker", "plain") if votes[fmt] == best) if best else "plain"


def parse_cri_or_plain(line: bytes) -> Parsed:
    return parse_cri(line) or (0, "", False, line, FLAG_BAD_PREFIX)


def parse_docker_or_plain(line: bytes) -> Parsed:
    return parse_docker(line) or (0, "", False, line, 0)


PARSERS: dict[str, Callable[[bytes], Parsed]] = {"cri": parse_cri_or_plain, "docker": parse_docker_or_plain,
                                                 "plain": parse_plain}


def parse_line(fmt: Format, line: bytes) -> Parsed:
    """Parse by format; a line that does not fit its file's format is kept whole as plain content."""
    return PARSERS[fmt](line)
