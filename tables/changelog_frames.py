"""Packs many table writes into one changelog record, and unpacks them in recovery.

faust sends a changelog message per table write (~230 us each, docs/architecture.md); a trace table written
per chunk would spend most of its CPU there. One record per chunk carries every key it changed:
`[u32 key length][key][i32 value length or -1 for delete][value]`, repeated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

_HEADER = struct.Struct(">Ii")
_KEY_LEN = struct.Struct(">I")
_VAL_LEN = struct.Struct(">i")


def pack(updates: Mapping[bytes, bytes | None]) -> bytes:
    parts: list[bytes] = []
    for key, value in updates.items():
        parts.append(_KEY_LEN.pack(len(key)))
        parts.append(key)
        if value is None:
            parts.append(_VAL_LEN.pack(-1))
        else:
            parts.append(_VAL_LEN.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


def unpack(data: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    view, pos, end = memoryview(data), 0, len(data)
    while pos < end:
        (key_len,) = _KEY_LEN.unpack_from(view, pos)
        pos += 4
        key = bytes(view[pos : pos + key_len])
        pos += key_len
        (value_len,) = _VAL_LEN.unpack_from(view, pos)
        pos += 4
        if value_len < 0:
            yield key, None
        else:
            yield key, bytes(view[pos : pos + value_len])
            pos += value_len
