"""logfmt (`key=value key2="quoted value" flag`), as Go's go-logfmt and Heroku's format write it.

A line is logfmt when the whole of it splits into pairs and at least one pair has `=`; a bare key
is `true`, `key=` is the empty string, and quoted values take Go's escapes (`\\"`, `\\\\`, `\\n`,
`\\t`, `\\r`, `\\uXXXX`). Anything else (an unterminated quote, a stray `"`) is not logfmt, so the
next parser of the source gets the line.
"""

from __future__ import annotations

import re
from typing import Any

# one token per match: a pair (key, `=`, quoted body or bare value), or a character that cannot start a
# key (group 5), which makes the line not logfmt; findall walks the line in C, so Python only builds the dict
_TOKEN = re.compile(r'[ \t]*(?:([^\s="]+)(?:(=)(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s"]*)))?|([^ \t]))')
_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return chr(int(code[1:], 16)) if code[0] == "u" else _SIMPLE[code]


def parse_logfmt(text: str) -> dict[str, Any] | None:
    """The pairs of a logfmt line, or None if the line is not logfmt.

    The common line (no backslash escape; no tab, control or non-ASCII space, so its only blank is
    ` `) is split with str methods, a third cheaper than the regex walk; any other line takes
    `parse_logfmt_escaped`, which reads every line, and both give the same result (tested on random lines).
    """
    if "\\" in text or not text.isprintable():
        return parse_logfmt_escaped(text)
    segments = text.split('"')  # outside, quoted, outside, ...
    last = len(segments) - 1
    if last % 2:
        return None  # a quote without its end
    record: dict[str, Any] = {}
    pairs = False
    for index in range(0, last + 1, 2):
        tokens = segments[index].split(" ")
        quoted_key = ""
        if index < last:  # a quoted value follows: the segment must end with `key=`
            quoted_key = tokens.pop()
            if quoted_key[-1:] != "=" or len(quoted_key) == 1 or "=" in quoted_key[:-1]:
                return None
        for token in tokens:
            if token:
                name, equals, value = token.partition("=")
                if not name:
                    return None
                if equals:
                    pairs = True
                    record[name] = value
                else:
                    record[name] = True
        if quoted_key:
            pairs = True
            record[quoted_key[:-1]] = segments[index + 1]
    return record if pairs else None


def parse_logfmt_escaped(text: str) -> dict[str, Any] | None:
    """`parse_logfmt` for any line, escapes and tabs included."""
    record: dict[str, Any] = {}
    pairs = False
    for key, equals, quoted, bare, stray in _TOKEN.findall(text):
        if stray:
            return None
        if not equals:
            record[key] = True
            continue
        pairs = True
        if bare or not quoted:  # a bare value, or `key=""`/`key=` (both the empty string)
            record[key] = bare
        else:
            record[key] = _ESCAPE.sub(_unescape, quoted) if "\\" in quoted else quoted
    return record if pairs else None
