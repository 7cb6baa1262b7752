"""Line formats on disk: CRI (containerd, CRI-O), docker json-file, and plain lines.

Each parser turns one physical line into (source time ns, stream, is_partial, content bytes).
CRI: `<RFC3339Nano> <stdout|stderr> <P|F> <content>`; docker: `{"log":"...\\n","stream":..,"time":..}`
where a missing trailing newline in `log` means the line continues in the next record.
"""

from __future__ import annotations

from typing import Literal

import orjson

from app.timeparse import parse_rfc3339_ns

Format = Literal["cri", "docker", "plain"]
Parsed = tuple[int, str, bool, bytes]


def parse_cri(line: bytes) -> Parsed | None:
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"P", b"F"):
        return None
    ts = parse_rfc3339_ns(parts[0].decode("ascii", "replace")) or 0
    return ts, parts[1].decode(), parts[2] == b"P", parts[3] if len(parts) == 4 else b""


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
    return ts, str(record.get("stream", "stdout")), partial, text.rstrip("\n").encode()


def parse_plain(line: bytes) -> Parsed:
    return 0, "", False, line


def detect_format(first_line: bytes) -> Format:
    """Guess a file's format from its first line (overridable by `collector.format`)."""
    if first_line.startswith(b"{") and parse_docker(first_line) is not None:
        return "docker"
    if parse_cri(first_line) is not None:
        return "cri"
    return "plain"


def parse_line(fmt: Format, line: bytes) -> Parsed:
    """Parse by format; a line that does not fit its file's format is kept whole as plain content."""
    if fmt == "cri":
        return parse_cri(line) or parse_plain(line)
    if fmt == "docker":
        return parse_docker(line) or parse_plain(line)
    return parse_plain(line)
