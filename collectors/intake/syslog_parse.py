"""Syslog messages (RFC 5424 and RFC 3164) -> a JSON line, with structured data kept as fields.

The line is `{"time", "level", "msg", "syslog": {facility, severity, host, app, procid, msgid, sd}}`;
when MSG is itself a JSON object (an application logging JSON through syslog) that object is the
line, with `time`/`level` filled in only where it has none and the syslog header under `syslog`.
RFC 3164 timestamps carry no year or zone: the current year and UTC are assumed (the year before,
if that would put the message more than a day in the future).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import orjson

from core.timeparse import parse_rfc3339_ns

SEVERITIES = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
_PRI = re.compile(rb"^<(\d{1,3})>")
_SD_PARAM = re.compile(r'([^\s=\]"]+)="((?:[^"\\\]]|\\.)*)"')
_BSD_TIME = re.compile(r"^([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), 1)}
_TAG = re.compile(r"^([^\s:\[]{1,48})(?:\[([^\]]*)\])?:\s?")


class NotSyslog(ValueError):
    pass


_HEADER = ("host", "app", "procid", "msgid")  # RFC 5424 header fields after the time; "-" is nil
_MIN_NS, _MAX_NS = -(1 << 63), (1 << 63) - 1


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]], str]:
    """Parse `[id k="v" ...][...]` at the start of `text`; return it and the rest."""
    sd: dict[str, dict[str, str]] = {}
    if text.startswith("-"):
        return sd, text[1:]
    while text.startswith("["):
        end = 1
        while end < len(text) and text[end] != "]":
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise NotSyslog("structured data element is not closed")
        element = text[1:end]
        sd_id, _, params = element.partition(" ")
        sd[sd_id] = {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in _SD_PARAM.findall(params)}
        text = text[end + 1:]
    return sd, text


def _rfc5424(pri: int, rest: str, received_ns: int) -> tuple[dict[str, Any], str, int]:
    parts = rest.split(" ", 6)
    if len(parts) < 6:
        raise NotSyslog("RFC 5424 header is incomplete")
    stamp = parts[1]
    sd, msg = _structured_data(parts[6] if len(parts) > 6 else "-")
    time_ns = parse_rfc3339_ns(stamp) if stamp != "-" else None
    if time_ns is not None and not _MIN_NS <= time_ns <= _MAX_NS:
        time_ns = None
    header: dict[str, Any] = {key: value for key, value in zip(_HEADER, parts[2:6], strict=True) if value != "-"}
    if sd:
        header["sd"] = sd
    return header, msg.removeprefix(" ").removeprefix("\ufeff"), time_ns or received_ns


def _rfc3164(rest: str, received_ns: int) -> tuple[dict[str, Any], str, int]:
    header: dict[str, Any] = {}
    time_ns = received_ns
    match = _BSD_TIME.match(rest)
    if match and match.group(1) in _MONTHS:
        now = dt.datetime.fromtimestamp(received_ns / 1e9, dt.UTC)
        month, day = _MONTHS[match.group(1)], int(match.group(2))
        hour, minute, second = (int(match.group(i)) for i in (3, 4, 5))
        try:
            stamp = dt.datetime(now.year, month, day, hour, minute, second, tzinfo=dt.UTC)
            if stamp - now > dt.timedelta(days=1):
                stamp = stamp.replace(year=now.year - 1)
            time_ns = int(stamp.timestamp()) * 1_000_000_000
        except ValueError:
            pass
        rest = rest[match.end():]
        host, _, rest = rest.partition(" ")
        header["host"] = host
    tag = _TAG.match(rest)
    if tag:
        header["app"] = tag.group(1)
        if tag.group(2) is not None:
            header["procid"] = tag.group(2)
        rest = rest[tag.end():]
    return header, rest, time_ns


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{_second(seconds)}.{nanos:09d}Z"  # lines of one second share the formatted second


def parse_syslog(data: bytes, received_ns: int) -> tuple[bytes, int]:
    """The JSON line of one syslog message and its time (ns); NotSyslog when there is no PRI."""
    data = data.rstrip(b"\r\n\x00")
    match = _PRI.match(data)
    if not match or int(match.group(1)) > 191:
        raise NotSyslog("no <PRI> at the start")
    pri = int(match.group(1))
    rest = data[match.end():].decode("utf-8", "replace")
    if rest.startswith("1 "):
        header, msg, time_ns = _rfc5424(pri, rest, received_ns)
    else:
        header, msg, time_ns = _rfc3164(rest, received_ns)
    level = SEVERITIES[pri & 7]
    header = {"facility": pri >> 3, "severity": level, **header}
    doc: dict[str, Any] | None = None
    if msg[:1] == "{" or msg.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(msg)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            doc = parsed
    if doc is None:
        doc = {"msg": msg}
    if "time" not in doc:
        doc["time"] = _rfc3339(time_ns)
    doc.setdefault("level", level)
    doc["syslog"] = header
    return orjson.dumps(doc), time_ns
