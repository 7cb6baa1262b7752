"""Fluent forward messages -> (tag, [(time ns, record)], options), for all four carrier modes.

Message `[tag, time, record, option?]`, Forward `[tag, [[time, record], ...], option?]`,
PackedForward `[tag, msgpack stream of [time, record], option?]` and CompressedPackedForward (the
same with `option.compressed == "gzip"`, inflated under the decoded-size cap). Times are integer or
float seconds or the EventTime extension (type 0: seconds and nanoseconds, big-endian).

Packed entries are read in one msgspec call when the message says how many there are (the `size`
option, which Fluent Bit and Fluentd send): the stream is read as an array of that length. That
decodes about 1.5x faster than msgpack's streaming Unpacker, which stays the reference and the path
for everything else: no `size`, a wrong `size`, or anything msgspec refuses (invalid UTF-8, which
the Unpacker replaces). The two are held to one result by tests/unit/collectors/intake.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import msgspec

from collectors.intake.limits import decode_body

Entry = tuple[int, Any]


class BadMessage(Exception):
    pass


def ext_hook(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        seconds, nanos = struct.unpack(">II", data)
        return EventTime(seconds * 1_000_000_000 + nanos)
    return msgpack.ExtType(code, data)


class EventTime(int):
    """Nanoseconds since the epoch, from the EventTime extension."""


def _bulk_ext_hook(code: int, data: memoryview) -> Any:
    return ext_hook(code, bytes(data))


_BULK = msgspec.msgpack.Decoder(ext_hook=_bulk_ext_hook)


def packed_entries(packed: bytes, size: Any) -> list[Any]:
    """The entries of a PackedForward stream: in one call when `size` is their count, else one by one."""
    if type(size) is int and 0 < size < 1 << 32:
        try:
            entries: list[Any] = _BULK.decode(b"\xdd" + struct.pack(">I", size) + packed)
            return entries
        except msgspec.DecodeError:
            pass  # a wrong size, or something only the Unpacker reads (it replaces invalid UTF-8)
    return stream_entries(packed)


def stream_entries(packed: bytes) -> list[Any]:
    """The reference: msgpack's Unpacker, entry by entry."""
    reader = unpacker(max(len(packed), 1))
    reader.feed(packed)
    return list(reader)


def unpacker(max_buffer: int) -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, unicode_errors="replace", ext_hook=ext_hook, strict_map_key=False,
                            max_buffer_size=max_buffer)


_NS = 1_000_000_000


def _event_ns(value: Any) -> int:
    if type(value) is EventTime:
        return int(value)
    raise TypeError("not an EventTime")


def _time_ns(value: Any) -> int:
    if isinstance(value, EventTime):
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * 1_000_000_000)
    raise BadMessage(f"event time {value!r} is neither a number nor an EventTime")


def is_event_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode_message(message: Any, max_decoded: int) -> tuple[str, list[Entry], dict[str, Any]]:
    if not isinstance(message, list | tuple) or len(message) < 2 or not isinstance(message[0], str):
        raise BadMessage("not a forward message ([tag, ...])")
    tag, body = message[0], message[1]
    if is_event_time(body):
        if len(message) < 3:
            raise BadMessage("Message mode needs [tag, time, record]")
        option = message[3] if len(message) > 3 and isinstance(message[3], dict) else {}
        return tag, [(_time_ns(body), message[2])], option
    option = message[2] if len(message) > 2 and isinstance(message[2], dict) else {}
    if isinstance(body, list | tuple):
        raw_entries: list[Any] = list(body)
    elif isinstance(body, bytes | str):
        packed = body if isinstance(body, bytes) else body.encode("utf-8", "surrogateescape")
        if option.get("compressed") == "gzip":
            packed = decode_body(packed, "gzip", max_decoded)
        raw_entries = packed_entries(packed, option.get("size"))
    else:
        raise BadMessage(f"entries of type {type(body).__name__}: expected an array or packed entries")
    try:  # the common message, without a Python call per entry: [int seconds or EventTime, record] pairs
        return tag, [(seconds * _NS if type(seconds) is int else _event_ns(seconds), record)
                     for seconds, record in raw_entries], option
    except (TypeError, ValueError):
        pass  # an unusual entry: the loop below names what is wrong
    entries: list[Entry] = []
    for entry in raw_entries:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise BadMessage("an entry is not [time, record]")
        entries.append((_time_ns(entry[0]), entry[1]))
    return tag, entries, option
