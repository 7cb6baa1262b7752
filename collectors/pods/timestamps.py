"""Kubelet timestamps (RFC 3339 with nanoseconds) to integers and back.

`timestamps=true` prefixes every log line with Go's RFC3339Nano, which trims trailing zeros of
the fraction (and drops the dot when it is zero). Parsing through datetime for each line is slow,
so the whole-second part is cached: lines of one second share it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_NS = 1_000_000_000


class TimestampError(ValueError):
    """The text is not an RFC 3339 timestamp."""


class TimestampParser:
    """Parses RFC 3339 timestamps to Unix nanoseconds, caching the last whole second."""

    __slots__ = ("_second_ns", "_second_text")

    def __init__(self) -> None:
        self._second_text = b""
        self._second_ns = 0

    def parse(self, text: bytes) -> int:
        # fast path: what the kubelet writes, `2025-06-10T08:25:41.63070246Z`
        if text[19:20] == b"." and text[-1:] == b"Z":
            digits = text[20:-1]
            if 0 < len(digits) <= 9 and digits.isdigit():
                head = text[:19]
                if head != self._second_text:
                    self._second_ns = _second_ns(head, b"Z", text)
                    self._second_text = head
                return self._second_ns + int(digits) * _SCALE[len(digits)]
        return _parse_general(text)

    def second_ns(self, head: bytes) -> int:
        """Nanoseconds of `YYYY-MM-DDTHH:MM:SS` in UTC (the last one cached); TimestampError if invalid."""
        if head != self._second_text:
            self._second_ns = _second_ns(head, b"Z", head)
            self._second_text = head
        return self._second_ns


_SCALE: list[int] = [10 ** (9 - n) for n in range(10)]
SCALE = _SCALE  # nanoseconds per unit of a fraction with n digits


def _parse_general(text: bytes) -> int:
    if len(text) < 20 or text[10:11] not in (b"T", b"t"):
        raise TimestampError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    rest = text[19:]
    frac_ns = 0
    if rest[:1] == b".":
        end = 1
        while end < len(rest) and 48 <= rest[end] <= 57:
            end += 1
        digits = rest[1:end]
        if not digits:
            raise TimestampError(f"empty fraction in {text!r}")
        frac_ns = int(digits[:9].ljust(9, b"0"))
        rest = rest[end:]
    return _second_ns(text[:19], rest, text) + frac_ns


def _second_ns(head: bytes, zone: bytes, text: bytes) -> int:
    try:
        base = datetime.strptime(head.decode("ascii"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        if zone in (b"Z", b"z"):
            offset = timedelta(0)
        elif len(zone) == 6 and zone[:1] in (b"+", b"-") and zone[3:4] == b":":
            sign = 1 if zone[:1] == b"+" else -1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        else:
            raise ValueError("zone")
    except (ValueError, UnicodeDecodeError):
        raise TimestampError(f"not an RFC 3339 timestamp: {text[:40]!r}") from None
    return int((base - offset).timestamp()) * _NS


def format_rfc3339nano(ns: int) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction trimmed, no dot for whole seconds."""
    seconds, frac = divmod(ns, _NS)
    head = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if not frac:
        return head + "Z"
    return f"{head}.{frac:09d}".rstrip("0") + "Z"


def format_since_time(ns: int) -> str:
    """A `sinceTime` value: RFC 3339 in UTC, floored to the microsecond.

    Flooring means a resumed stream replays every line of the last microsecond seen, so the
    index within that microsecond is counted again from its first line (see positions.py).
    The real API server truncates sinceTime further, to the second; that only replays more.
    """
    seconds, frac = divmod(ns, _NS)
    head = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{frac // 1000:06d}Z"
