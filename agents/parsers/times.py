"""Text-log times to RFC 3339 strings, which the parse stage's time fields then read as for JSON.

Text loggers write times that are not ISO 8601: nginx/apache `10/Oct/2023:13:55:36 -0700`, syslog and
klog without a year, Go's `2023/11/14 22:13:20`, java.util.logging's `Nov 14, 2023 10:13:20 PM`,
log4j's default time of day only. A missing year or date is taken from the time the collector read
the line (a December line read in January belongs to the year before).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

_LAYOUTS = {
    "httpdate": "%d/%b/%Y:%H:%M:%S %z",
    "syslog": "%Y %b %d %H:%M:%S",
    "klog": "%Y %m%d %H:%M:%S",
    "go": "%Y/%m/%d %H:%M:%S",
    "jul": "%b %d, %Y %I:%M:%S %p",
    "timeofday": "%Y-%m-%d %H:%M:%S",
}
TIME_KINDS = frozenset(_LAYOUTS)


def to_rfc3339(kind: str, value: str, reference_ns: int) -> str | None:
    """`value` written the `kind` way as an RFC 3339 string, or None if it is not such a time."""
    whole, _, fraction = value.partition(".") if kind in ("klog", "go", "timeofday") else (value, "", "")
    if kind == "timeofday" and "," in whole:
        whole, _, fraction = whole.partition(",")
    if fraction and not fraction.isdigit():
        return None
    # the date a yearless or dateless time belongs to changes once a day: the reference's day is enough
    head = _seconds(kind, whole, reference_ns // 86_400_000_000_000 if kind in ("syslog", "klog", "timeofday") else 0)
    if head is None:
        return None
    text, zone = head
    return f"{text}.{fraction[:9]}{zone}" if fraction else text + zone


@lru_cache(maxsize=8192)
def _seconds(kind: str, whole: str, day: int) -> tuple[str, str] | None:
    """`YYYY-MM-DDTHH:MM:SS` and zone of a time without its fraction; `day` (since the epoch) dates it."""
    reference = datetime.fromtimestamp(day * 86_400 + 43_200, UTC)
    if kind in ("syslog", "klog"):
        whole = f"{reference.year} {' '.join(whole.split())}"
    elif kind == "timeofday":
        whole = f"{reference.date().isoformat()} {whole}"
    parsed = _parse(kind, whole)
    if parsed is None:
        return None
    if kind in ("syslog", "klog") and parsed - reference > timedelta(days=1):
        parsed = _parse(kind, f"{reference.year - 1}{whole[4:]}")
        if parsed is None:
            return None
    offset = parsed.strftime("%z")
    zone = "Z" if offset in ("", "+0000") else f"{offset[:3]}:{offset[3:]}"
    return parsed.strftime("%Y-%m-%dT%H:%M:%S"), zone


def _parse(kind: str, text: str) -> datetime | None:
    try:
        parsed = datetime.strptime(text, _LAYOUTS[kind])
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
