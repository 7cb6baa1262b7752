"""Grok expressions (`%{PATTERN:field:type}`) compiled to one Python regex with named groups.

Grok is how Logstash, Fluent Bit and Vector users already describe text logs, so operators can
bring their expressions; the base pattern names below follow Logstash's spelling, written out
here. Fields may carry dots (`http.status`), which the field aliases read like JSON keys;
`:int` and `:float` convert a capture.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

BASE_PATTERNS: dict[str, str] = {
    "INT": r"[+-]?\d+",
    "POSINT": r"\d+",
    "NONNEGINT": r"\d+",
    "NUMBER": r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)",
    "BASE16NUM": r"(?:0[xX])?[0-9A-Fa-f]+",
    "WORD": r"\w+",
    "NOTSPACE": r"\S+",
    "SPACE": r"\s*",
    "DATA": r".*?",
    "GREEDYDATA": r".*",
    "QUOTEDSTRING": r'"(?:[^"\\]|\\.)*"',
    "UUID": r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "IPV4": r"(?:\d{1,3}\.){3}\d{1,3}",
    "IPV6": r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?",
    "IP": r"(?:%{IPV6}|%{IPV4})",
    "HOSTNAME": r"[0-9A-Za-z](?:[0-9A-Za-z_.-]*[0-9A-Za-z])?",
    "IPORHOST": r"(?:%{IP}|%{HOSTNAME})",
    "USER": r"[\w.@-]+",
    "HTTPDUSER": r"(?:[\w.@-]+|-)",
    "URIPATHPARAM": r"\S+",
    "MONTH": r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*",
    "MONTHDAY": r"(?:0?[1-9]|[12]\d|3[01])",
    "YEAR": r"\d{4}",
    "TIME": r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?",
    "HTTPDATE": r"\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}",
    "TIMESTAMP_ISO8601": r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    "SYSLOGTIMESTAMP": r"%{MONTH} +%{MONTHDAY} %{TIME}",
    "SYSLOGHOST": r"%{IPORHOST}",
    "PROG": r"[\w._/%-]+",
    "LOGLEVEL": r"(?i:trace|debug|info(?:rmation)?|notice|warn(?:ing)?|error|err|fatal|critical|crit|severe|alert"
                r"|emerg(?:ency)?|panic|verbose|fine|finer|finest|config)\b",
    "JAVACLASS": r"(?:[a-zA-Z$_][\w$]*\.)*[a-zA-Z$_][\w$]*",
}

_REFERENCE = re.compile(r"%\{(\w+)(?::([\w.@-]+))?(?::(int|float))?\}")
_PCRE_GROUP = re.compile(r"\(\?<([A-Za-z_]\w*)>")
_PLAIN_GROUP = re.compile(r"\(\?P<([A-Za-z_]\w*)>")
_CONVERT: dict[str, Callable[[str], Any]] = {"int": int, "float": float}


class GrokError(ValueError):
    """A grok expression names an unknown pattern, loops, or is not a valid regex."""


class CompiledPattern:
    """One grok or regex pattern: match a line, get its fields."""

    __slots__ = ("_match", "_names", "_typed", "fields", "regex", "source", "time_pattern")

    def __init__(self, regex: re.Pattern[str], fields: dict[str, tuple[str, Callable[[str], Any] | None]],
                 source: str, time_pattern: str = "") -> None:
        self.regex, self.fields, self.source = regex, fields, source
        self.time_pattern = time_pattern  # the grok pattern name that captured `time` (how to read it)
        self._match = regex.match
        # groups are named after their fields where a field name can be a group name (compile_grok), so the
        # match's groupdict() is the record as it is; only dotted or repeated field names need renaming
        names = {group: field for group, (field, _) in fields.items() if group != field}
        self._names = names or None
        self._typed = [(field, convert) for field, convert in fields.values() if convert is not None]

    def match(self, text: str) -> dict[str, Any] | None:
        found = self._match(text)
        if found is None:
            return None
        record = found.groupdict()
        names = self._names
        if names is not None:
            record = {names.get(group, group): value for group, value in record.items() if value is not None}
        elif None in record.values():
            record = {field: value for field, value in record.items() if value is not None}
        for field, convert in self._typed:
            value = record.get(field)
            if value is not None:
                try:  # noqa: SIM105 - contextlib.suppress costs a context manager per typed field of every line
                    record[field] = convert(value)
                except ValueError:
                    pass  # kept as the text it was
        return record


def compile_regex(pattern: str) -> CompiledPattern:
    """A regex with named groups (Python `(?P<name>...)` or PCRE `(?<name>...)`), anchored at the line start."""
    try:
        regex = re.compile(_PCRE_GROUP.sub(r"(?P<\1>", pattern), re.DOTALL)
    except re.error as exc:
        raise GrokError(f"regex {pattern!r} is invalid: {exc}") from None
    if not regex.groupindex:
        raise GrokError(f"regex {pattern!r} has no named group, so it would extract nothing")
    return CompiledPattern(regex, {name: (name, None) for name in regex.groupindex}, pattern)


def compile_grok(expression: str, definitions: Mapping[str, str] | None = None) -> CompiledPattern:
    """The grok `expression` with BASE_PATTERNS plus `definitions`, anchored at the line start."""
    table = {**BASE_PATTERNS, **(definitions or {})}
    fields: dict[str, tuple[str, Callable[[str], Any] | None]] = {}
    time_pattern = [""]
    taken = {name for text in (expression, *table.values()) for name in _PLAIN_GROUP.findall(text)}  # (?P<x>...)

    def expand(text: str, depth: int) -> str:
        if depth > 24:
            raise GrokError(f"grok expression {expression!r}: patterns nest too deeply (a loop?)")

        def replace(ref: re.Match[str]) -> str:
            name, field, kind = ref.group(1), ref.group(2), ref.group(3)
            if name not in table:
                raise GrokError(f"grok expression {expression!r}: unknown pattern %{{{name}}}")
            body = expand(table[name], depth + 1)
            if field is None:
                return f"(?:{body})"
            group = field
            if not field.isidentifier() or field in fields or field in taken:
                group = next(g for n in itertools.count() if (g := f"_g{n}") not in fields and g not in taken)
            fields[group] = (field, _CONVERT[kind] if kind else None)
            if field == "time":
                time_pattern[0] = name
            return f"(?P<{group}>{body})"

        return _REFERENCE.sub(replace, text)

    try:
        regex = re.compile(expand(expression, 0), re.DOTALL)
    except re.error as exc:
        raise GrokError(f"grok expression {expression!r} is not a valid regex: {exc}") from None
    for name in regex.groupindex:  # plain (?P<name>...) groups written in the expression
        fields.setdefault(name, (name, None))
    return CompiledPattern(regex, fields, expression, time_pattern[0])
