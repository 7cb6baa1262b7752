"""Finding a log field under any of its aliases, including dotted and nested names.

Why a module of its own: the JSON reference parse (agents/line_parser.py) and the text parsers
(agents/parsers/) both turn a record into trace id, time, level and service the same way, and the
C scan (agents/_linescan.c) must know which keys could make the reference look further than the
first alias (the "watch" keys), or it would answer differently.

A dotted alias such as `service.name` matches a literal key `"service.name"` (ECS as log4j2's
JsonTemplateLayout writes it), a nested object `{"service": {"name": ...}}` (ECS as most other
encoders write it), or any mix (`{"Resource": {"service.name": ...}}`, the OpenTelemetry model).
"""

from __future__ import annotations

from typing import Any

from core.models import LEVEL_NAMES

# Level fields whose integers are OpenTelemetry SeverityNumbers (1-4 trace ... 21-24 fatal), not
# pino/bunyan levels (10 trace ... 60 fatal).
SEVERITY_NUMBER_FIELDS = frozenset({"SeverityNumber", "severityNumber", "severity_number"})
# Serilog's compact JSON leaves `@l` out for Information events; such a line is at info level.
SERILOG_MESSAGE_KEYS = ("@mt", "@m")


class Aliases:
    """The configured names of one field, pre-split for the nested walk."""

    __slots__ = ("keys", "names", "paths", "serilog", "watch")

    def __init__(self, names: list[str], *, serilog_info: bool = False) -> None:
        self.names = list(names)
        # (name, its parts and the top-level keys a nested match must start with) - or None if not dotted
        self.paths = [(name, (name.split("."), _heads(name)) if "." in name else None) for name in names]
        watch = {head for name in names for head in _heads(name)}
        # a Serilog line (`@mt`/`@m` present) without `@l` is at info: the scan must leave it to the reference
        self.serilog = serilog_info and "@l" in names
        if self.serilog:
            watch.update(SERILOG_MESSAGE_KEYS)
        self.watch = sorted(watch)
        # every top-level key that could lead to a value: a record with none of them has no such field
        self.keys = frozenset(names) | {head for name in names for head in _heads(name)}

    def first(self, doc: dict[str, Any]) -> tuple[str, Any]:
        """(alias, value) of the first alias present with a value other than null, else ("", None).

        A literal key is preferred to a nested path of the same alias; aliases are tried in order.
        """
        if self.keys.isdisjoint(doc):
            return "", None
        for name, nested in self.paths:
            value = doc.get(name)
            if value is None and nested is not None and any(head in doc for head in nested[1]):
                value = _walk(doc, nested[0])
            if value is not None:
                return name, value
        return "", None

    def first_string(self, doc: dict[str, Any]) -> str | None:
        """The first alias's value that is a string (ECS's `service` is an object holding `name`)."""
        if self.keys.isdisjoint(doc):
            return None
        for name, nested in self.paths:
            value = doc.get(name)
            if type(value) is not str and nested is not None and any(head in doc for head in nested[1]):
                value = _walk(doc, nested[0])
            if type(value) is str:
                return value
        return None


def _heads(name: str) -> tuple[str, ...]:
    """The top-level keys a nested match of dotted `name` may start with (`a`, `a.b` for `a.b.c`)."""
    parts = name.split(".")
    return tuple(".".join(parts[:i]) for i in range(1, len(parts)))


def _walk(node: Any, parts: list[str]) -> Any:
    """The value at `parts` below `node`, where a key may itself hold dots (`service.name`)."""
    if not parts:
        return node
    if type(node) is not dict:
        return None
    for cut in range(1, len(parts) + 1):
        child = node.get(".".join(parts[:cut]))
        if child is not None:
            found = _walk(child, parts[cut:])
            if found is not None:
                return found
    return None


def severity_number_level(value: int) -> str:
    """An OpenTelemetry SeverityNumber (1-24) as a level name; '' outside that range."""
    return LEVEL_NAMES[(value - 1) // 4] if 1 <= value <= 24 else ""


def object_time(value: dict[str, Any]) -> int | None:
    """UTC ns of log4j2 JsonLayout's `"instant": {"epochSecond": s, "nanoOfSecond": n}`, else None."""
    seconds, nanos = value.get("epochSecond"), value.get("nanoOfSecond", 0)
    if type(seconds) is int and type(nanos) is int and 0 <= nanos < 1_000_000_000:
        total = seconds * 1_000_000_000 + nanos
        return total if -(1 << 63) <= total < (1 << 63) else None
    return None
