"""Forward message modes and the shared-key handshake, checked against the protocol's formulas."""

from __future__ import annotations

import gzip
import hashlib
import random
import struct

import msgpack
import pytest
from pydantic import SecretStr

from collectors.intake.forward import careful_entry_lines, entry_lines
from collectors.intake.forward_handshake import Handshake
from collectors.intake.forward_messages import BadMessage, decode_message, packed_entries, stream_entries, unpacker
from collectors.intake.limits import LimitExceeded
from collectors.intake.lines import RequestLines
from core.intake_settings import IntakeTenant


def event_time(seconds: int, nanos: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


def roundtrip(message: object) -> object:
    feed = unpacker(1 << 20)
    feed.feed(msgpack.packb(message))
    return next(feed)


def test_every_carrier_mode_yields_time_ns_and_records() -> None:
    packed = b"".join(msgpack.packb([10, {"n": i}]) for i in range(3))
    assert decode_message(roundtrip(["t", event_time(5, 7), {"a": 1}, {"chunk": "c"}]), 100) == \
        ("t", [(5_000_000_007, {"a": 1})], {"chunk": "c"})
    assert decode_message(roundtrip(["t", [[1, {"a": 1}], [2.5, {"b": 2}]]]), 100)[1] == \
        [(1_000_000_000, {"a": 1}), (2_500_000_000, {"b": 2})]
    assert decode_message(roundtrip(["t", packed, {"size": 3}]), 100)[1][2] == (10_000_000_000, {"n": 2})
    _tag, entries, option = decode_message(roundtrip(["t", gzip.compress(packed), {"compressed": "gzip"}]), 100)
    assert len(entries) == 3 and option["compressed"] == "gzip"


def test_unreadable_messages_and_bombs_are_refused() -> None:
    for bad in ({"a": 1}, ["t"], ["t", "x" * 3, {}], ["t", [[1]]], ["t", [["later", {}]]]):
        with pytest.raises(BadMessage):
            decode_message(roundtrip(bad), 100)
    bomb = gzip.compress(msgpack.packb([1, {"x": "y" * 10_000}]))
    with pytest.raises(LimitExceeded):
        decode_message(roundtrip(["t", bomb, {"compressed": "gzip"}]), 1000)


def _sha512(*parts: bytes) -> str:
    return hashlib.sha512(b"".join(parts)).hexdigest()


def test_handshake_finds_the_tenant_of_the_key_and_proves_it_knows_it() -> None:
    tenants = [(key, IntakeTenant(name=name, forward_shared_key=SecretStr(key)))
               for name, key in (("a", "ka"), ("b", "kb"))]
    shake = Handshake(tenants, server_hostname="srv")
    helo = shake.helo()
    nonce = helo[1]["nonce"]
    assert helo[0] == "HELO" and len(nonce) == 16
    ping = ["PING", "cli", "salt", _sha512(b"salt", b"cli", nonce, b"kb"), "", ""]
    tenant, pong = shake.pong(ping)
    assert tenant is not None and tenant.name == "b"
    assert pong == ["PONG", True, "", "srv", _sha512(b"salt", b"srv", nonce, b"kb")]
    tenant, pong = shake.pong(["PING", "cli", "salt", _sha512(b"salt", b"cli", nonce, b"kc"), "", ""])
    assert tenant is None and pong[1] is False and pong[2] == "shared key mismatch"
    assert shake.pong(["HELLO"])[0] is None


def test_entry_times_of_every_kind_and_a_string_time_is_refused_not_multiplied() -> None:
    packed = msgpack.packb(["t", [[1, {}], [event_time(2, 5), {}], [1.5, {}]]])
    assert [t for t, _ in decode_message(roundtrip(msgpack.unpackb(packed)), 100)[1]] == \
        [1_000_000_000, 2_000_000_005, 1_500_000_000]
    with pytest.raises(BadMessage, match="neither a number"):
        decode_message(roundtrip(["t", [["1000000", {}]]]), 100)


def test_bulk_and_careful_entry_lines_agree() -> None:
    """entry_lines' bulk path against its record-by-record reference, on records of every kind."""
    kinds = [{"a": 1, "s": "é"}, {"b": [1.5, None, True]}, {"bin": b"\x00\xff"}, {1: "int key"}, "not a map",
             {"ext": msgpack.ExtType(5, b"\x01")}, {"long": "x" * 300}, {}, {"n": {"deep": [{"x": 1}]}}]
    rng = random.Random(7)
    for _ in range(300):
        records = [rng.choice(kinds) for _ in range(rng.randrange(1, 6))]
        entries = [(index * 10, record) for index, record in enumerate(records)]
        bulk, careful = RequestLines(), RequestLines()
        entry_lines(entries, 5, 200, bulk)
        careful_entry_lines(entries, 5, 200, careful)
        assert bulk.lines == careful.lines and bulk.size == careful.size, records
        assert [(r.index, r.reason) for r in bulk.rejections] == [(r.index, r.reason) for r in careful.rejections]
    clean = RequestLines()
    entry_lines([(1, {"a": 1})], 0, 200, clean)
    assert clean.lines == [[0, '{"a":1}', "", 1, 0]]
    refused = RequestLines()
    entry_lines([(1, {1: "x"})], 0, 200, refused)
    assert not refused.lines and refused.rejections[0].reason == "not_json"


def test_packed_entries_in_one_call_and_one_by_one_agree() -> None:
    """The msgspec bulk read of PackedForward entries against msgpack's Unpacker (the reference), with
    right and wrong `size` options and entries only the Unpacker reads."""
    kinds = [[1, {"a": 1, "s": "é"}], [event_time(3, 4), {"b": [1.5, None, True]}], [2, {"bin": b"\x00"}],
             [2, {1: "int key"}], [5, {"ext": msgpack.ExtType(5, b"\x01")}], [7, {"n": {"t": event_time(1, 1)}}],
             [9, "not a map"], [10, {"deep": [[[[[[[[1]]]]]]]]}]]
    invalid_utf8 = b"\x92\x01\x81\xa1a\xa2\xff\xfe"  # [1, {"a": <invalid UTF-8>}]
    rng = random.Random(3)
    for _ in range(300):
        chosen = [rng.choice(kinds) for _ in range(rng.randrange(1, 6))]
        packed = b"".join(msgpack.packb(entry) for entry in chosen)
        if rng.random() < 0.2:
            packed += invalid_utf8
        reference = stream_entries(packed)
        for size in (len(reference), len(reference) - 1, len(reference) + 1, None, "3"):
            assert packed_entries(packed, size) == reference, (chosen, size)
    assert stream_entries(invalid_utf8)[0][1]["a"] == "\ufffd\ufffd"  # replaced, as before
