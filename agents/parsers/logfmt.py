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
    """The pairs of a logfmt line, or None if the line is not logfmt."""
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
