"""Query parameters, checked once for every backend: a bad one is refused by name with what is allowed.

Times are RFC 3339 (`2025-06-10T08:00:00Z`), epoch milliseconds, or a duration before now (`15m`,
`2h`); a search without `from` covers `api.default_window` before `to`, and no query may span more
than `api.max_window`, so nothing scans the whole store. Paging is by keyset: the `cursor` of a page
names the last line returned, and the next page starts after it, so deep pages cost no more than the
first. `page=N` (1-based, LogStream's parameter) is accepted and turned into an offset, bounded.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from core.durations import parse_duration
from core.models import LEVEL_NAMES
from core.settings import ApiSettings
from core.timeparse import parse_rfc3339_ns

MAX_OFFSET = 10_000
_NS = 1_000_000_000
_FILTER_CHARS = 256
LOG_PARAMS = ("service", "level", "namespace", "pod", "trace_id", "q", "from", "to", "limit", "cursor", "page",
              "order")
TRACE_PARAMS = ("service", "has_error", "from", "to", "min_duration", "limit")


class BadParameter(ValueError):
    """A request parameter that is not allowed; the API answers 400 with this text."""

    def __init__(self, name: str, allowed: str, value: str | None = None) -> None:
        shown = f" = {value[:80]!r}" if value is not None else ""
        super().__init__(f"parameter {name}{shown}: allowed: {allowed}")
        self.name = name


@dataclass(frozen=True)
class Cursor:
    """Position of the last line of a page: its time (UTC ns) and line id."""

    time_ns: int
    line_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(orjson.dumps([self.time_ns, self.line_id])).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            time_ns, line_id = value
            if not isinstance(time_ns, int) or not isinstance(line_id, str):
                raise ValueError
            return cls(time_ns, line_id)
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise BadParameter("cursor", "the `next_cursor` of a previous page, unchanged", text) from None


@dataclass(frozen=True)
class LogQuery:
    """A search over stored lines: filters, a closed time range [from_ns, to_ns), and a page."""

    from_ns: int
    to_ns: int
    limit: int
    service: list[str] = field(default_factory=list)
    level: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    pod: list[str] = field(default_factory=list)
    trace_id: str | None = None
    text: str | None = None
    cursor: Cursor | None = None
    offset: int = 0
    descending: bool = True


@dataclass(frozen=True)
class TraceQuery:
    """A search over closed trace summaries."""

    from_ns: int
    to_ns: int
    limit: int
    service: str | None = None
    has_error: bool | None = None
    min_duration_ms: float = 0.0


def parse_time(name: str, text: str, now_ns: int) -> int:
    """UTC ns of an RFC 3339 time, epoch milliseconds, or a duration ago."""
    text = text.strip()
    if text.isdigit():
        return int(text) * 1_000_000
    parsed = parse_rfc3339_ns(text)
    if parsed is not None and "-" in text[:5]:
        return parsed
    try:
        return now_ns - int(parse_duration(text) * _NS)
    except (ValueError, TypeError):
        raise BadParameter(name, "an RFC 3339 time (2025-06-10T08:00:00Z), epoch milliseconds, "
                                 "or a duration before now (15m, 2h, 7d)", text) from None


def _names(params: Mapping[str, str], name: str) -> list[str]:
    raw = params.get(name)
    if raw is None:
        return []
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values or any(len(v) > _FILTER_CHARS for v in values):
        raise BadParameter(name, f"one or more comma-separated names of at most {_FILTER_CHARS} characters", raw)
    return values


def _int(params: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadParameter(name, f"an integer from {low} to {high}", raw)
    return value


def _window(params: Mapping[str, str], settings: ApiSettings, now_ns: int | None) -> tuple[int, int]:
    now = time.time_ns() if now_ns is None else now_ns
    to_ns = parse_time("to", params["to"], now) if "to" in params else now
    default_from = to_ns - int(settings.default_window * _NS)
    from_ns = parse_time("from", params["from"], now) if "from" in params else default_from
    if from_ns >= to_ns:
        raise BadParameter("from", "a time before `to`", params.get("from"))
    if to_ns - from_ns > settings.max_window * _NS:
        raise BadParameter("from", f"a time at most {settings.max_window / 86400:g} days before `to` (api.max_window)",
                           params.get("from"))
    return from_ns, to_ns


def _unknown(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    for name in params:
        if name not in known:
            raise BadParameter(name, "one of " + ", ".join(known))


def parse_log_query(params: Mapping[str, str], settings: ApiSettings, now_ns: int | None = None) -> LogQuery:
    _unknown(params, LOG_PARAMS)
    levels = _names(params, "level")
    for level in levels:
        if level not in LEVEL_NAMES:
            raise BadParameter("level", ", ".join(LEVEL_NAMES) + " (comma-separated)", params["level"])
    limit = _int(params, "limit", 1, settings.max_limit, min(100, settings.max_limit))
    cursor = Cursor.decode(params["cursor"]) if "cursor" in params else None
    page = _int(params, "page", 1, MAX_OFFSET // limit + 1, 1)
    if cursor is not None and "page" in params:
        raise BadParameter("page", "either `page` or `cursor`, not both", params["page"])
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadParameter("order", "asc or desc", order)
    text = params.get("q")
    if text is not None and not (0 < len(text.strip()) <= 512):
        raise BadParameter("q", "words to find in the message, 1 to 512 characters", text)
    trace = params.get("trace_id")
    if trace is not None and not 0 < len(trace) <= _FILTER_CHARS:
        raise BadParameter("trace_id", f"a trace id of 1 to {_FILTER_CHARS} characters", trace)
    from_ns, to_ns = _window(params, settings, now_ns)
    return LogQuery(from_ns, to_ns, limit, _names(params, "service"), levels, _names(params, "namespace"),
                    _names(params, "pod"), trace, text.strip() if text else None, cursor, (page - 1) * limit,
                    order == "desc")


def parse_trace_query(params: Mapping[str, str], settings: ApiSettings, now_ns: int | None = None) -> TraceQuery:
    _unknown(params, TRACE_PARAMS)
    has_error = params.get("has_error")
    if has_error is not None and has_error not in ("true", "false"):
        raise BadParameter("has_error", "true or false", has_error)
    min_duration = 0.0
    if "min_duration" in params:
        try:
            min_duration = parse_duration(params["min_duration"]) * 1000
        except (ValueError, TypeError):
            raise BadParameter("min_duration", "a duration (250ms, 2s, 1m)", params["min_duration"]) from None
    services = _names(params, "service")
    if len(services) > 1:
        raise BadParameter("service", "one service name", params["service"])
    from_ns, to_ns = _window(params, settings, now_ns)
    return TraceQuery(from_ns, to_ns, _int(params, "limit", 1, settings.max_limit, min(100, settings.max_limit)),
                      services[0] if services else None, None if has_error is None else has_error == "true",
                      min_duration)
