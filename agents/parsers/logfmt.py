"""logfmt (`key=value key2="quoted value" flag`), as Go's go-logfmt and Heroku's format write it.

A line is logfmt when the whole of it splits into pairs and at least one pair has `=`; a bare key
is `true`, `key=` is the empty string, and quoted values take Go's escapes (`\\"`, `\\\\`, `\\n`,
`\\t`, `\\r`, `\\uXXXX`). Anything else (an unterminated quote, a stray `"`) is not logfmt, so the
next parser of the source gets the line.
"""

from __future__ import annotations

import re
from typing import Any

_PAIR = re.compile(r'[ \t]*([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?[ \t]*')
_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return chr(int(code[1:], 16)) if code[0] == "u" else _SIMPLE[code]


def parse_logfmt(text: str) -> dict[str, Any] | None:
    """The pairs of a logfmt line, or None if the line is not logfmt."""
    record: dict[str, Any] = {}
    pos, end, pairs = 0, len(text), 0
    match_at = _PAIR.match
    while pos < end:
        match = match_at(text, pos)
        if match is None or match.end() == pos:
            return None
        key, value = match.group(1), match.group(2)
        if value is None:
            record[key] = True
        else:
            pairs += 1
            if value[:1] == '"':
                body = value[1:-1]
                record[key] = _ESCAPE.sub(_unescape, body) if "\\" in body else body
            else:
                record[key] = value
        pos = match.end()
    return record if pairs else None
