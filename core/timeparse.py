"""Event times to UTC nanoseconds, fast, without losing nanosecond precision.

Applications log `"2025-06-10T08:25:41.63070246Z"`; datetime keeps microseconds only and
float epochs lose nanoseconds, so RFC 3339 / ISO 8601 is parsed by hand into integers.
"""

from __future__ import annotations

import calendar
import math
import re

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9})\d*)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)
_MIN_NS, _MAX_NS = -(1 << 63), (1 << 63) - 1
EPOCH_UNITS = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000}  # ns per unit of each epoch time_format
_base_cache: dict[tuple[int, int, int, int], int] = {}


SECOND_CACHE: dict[str, int] = {}  # 'YYYY-MM-DDTHH:MM:SS' -> UTC ns (shared with the parser's fast path)


def parse_rfc3339_ns(text: str) -> int | None:
    """UTC nanoseconds for an RFC 3339 / ISO 8601 date-time, or None if it is not one.

    A missing offset is read as UTC (what most loggers mean); any `+hh:mm` offset is applied.
    The common shape `YYYY-MM-DDTHH:MM:SS[.fraction]Z` takes a fast path: lines of one second
    share their second, which is parsed once and cached.
    """
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T":
        head = text[:19]
        base = SECOND_CACHE.get(head)
        if base is not None:
            if len(text) == 20:
                return base
            frac = text[20:-1]
            if text[19] == "." and 0 < len(frac) <= 9 and frac.isascii() and frac.isdigit():
                return base + int(frac.ljust(9, "0"))
        else:
            whole = _slow_parse(head + "Z")
            if whole is not None and _MIN_NS <= whole <= _MAX_NS - 1_000_000_000:  # cached seconds stay in range
                if len(SECOND_CACHE) > 65536:
                    SECOND_CACHE.clear()
                SECOND_CACHE[head] = whole
                return parse_rfc3339_ns(text) if len(text) > 20 else whole
    return _slow_parse(text)


def _slow_parse(text: str) -> int | None:
    match = _ISO.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    key = (int(year), int(month), int(day), int(hour))
    base = _base_cache.get(key)
    if base is None:
        try:
            base = calendar.timegm((key[0], key[1], key[2], key[3], 0, 0, 0, 0, 0))
        except (ValueError, OverflowError):
            return None
        if not (1 <= key[1] <= 12 and 1 <= key[2] <= calendar.monthrange(key[0], key[1])[1] and key[3] < 24):
            return None
        if len(_base_cache) > 4096:
            _base_cache.clear()
        _base_cache[key] = base
    mins, secs = int(minute), int(second)
    if mins > 59 or secs > 60:
        return None
    seconds = base + mins * 60 + secs
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        seconds -= sign * offset
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return seconds * 1_000_000_000 + nanos


def parse_event_time(value: object, time_format: str) -> int | None:
    """UTC nanoseconds for a log's time field under `time_format` (auto, rfc3339, epoch_s, epoch_ms).

    None also for times whose nanoseconds do not fit a signed 64-bit integer (before 1677 or after
    2262, or an infinite float): sinks and Kafka timestamps cannot hold them.
    """
    parsed = _event_time(value, time_format)
    return parsed if parsed is not None and _MIN_NS <= parsed <= _MAX_NS else None


def _event_time(value: object, time_format: str) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if time_format in ("auto", "rfc3339"):
            parsed = parse_rfc3339_ns(value)
            if parsed is not None or time_format == "rfc3339":
                return parsed
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and time_format != "rfc3339":
        unit = EPOCH_UNITS.get(time_format)
        if unit is None:  # auto: guess the unit from the magnitude
            unit = 1_000_000_000 if abs(value) < 1e11 else 1_000_000 if abs(value) < 1e14 else 1
        if isinstance(value, float):
            scaled = value * unit
            return int(scaled) if math.isfinite(scaled) else None
        return value * unit
    return None
