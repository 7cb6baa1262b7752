"""Human durations and sizes (`5s`, `48h`, `1m30s`, `64MiB`) for settings.

The seed tool took `BATCH_PERIOD=5s` and `TTL=48h`; users keep writing them that way,
so every duration or size setting accepts those forms as well as plain numbers.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")


def parse_duration(value: object) -> float:
    """Return seconds for `value`: a number of seconds or a string like `250ms`, `5s`, `1h30m`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 500ms, 5s, 10m or 48h")
    if isinstance(value, int | float):
        return _finite(float(value))
    if not isinstance(value, str):
        raise ValueError("expected a duration like 500ms, 5s, 10m or 48h")
    text = value.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"{value!r} is not a duration: use a number of seconds or units ns, us, ms, s, m, h, d "
                "(e.g. 500ms, 5s, 10m, 48h)"
            ) from None
    return _finite(seconds)


def _finite(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise ValueError("allowed: a finite duration like 500ms, 5s, 10m or 48h (not nan or inf)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: object) -> int:
    """Return bytes for `value`: an integer or a string like `512KiB`, `1MiB`, `5MB`."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 1048576, 512KiB or 1MiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        match = _SIZE.match(value.strip().lower())
        if match and match.group(2) in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    raise ValueError(f"{value!r} is not a size: use bytes or units KiB, MiB, GiB, KB, MB, GB (e.g. 512KiB)")


def _more_than_zero(value: float) -> float:
    if value <= 0:
        raise ValueError("0 cannot work here; allowed: more than 0 (e.g. 200ms, 5s or 64KiB)")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, accepting `5s`/`48h` style strings; 0 allowed (it means "off" or "at once")."""

Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_more_than_zero)]
"""A duration that must be more than 0 (a period, timeout or age that 0 would break)."""

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""Bytes, accepting `512KiB`/`1MiB` style strings; 0 allowed where it means "off"."""

PositiveSize = Annotated[int, BeforeValidator(parse_size), AfterValidator(_more_than_zero)]
"""A size that must be more than 0 (a buffer, batch or line limit)."""
