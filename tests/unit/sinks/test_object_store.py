"""Object keys of the object-store base when the drain splits one record larger than the flush size; its
parallel gzip bodies, from ISA-L (the default) and from zlib (the reference path)."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest
from pydantic import ValidationError

from core.settings import S3SinkSettings
from sinks.base import SinkBatch, SinkLine
from sinks.object_store import (
    COMPRESS_PIECE,
    ISAL_PIECE,
    deflater,
    gzip_parallel,
    isal_zlib,
    ndjson,
    object_key,
    sibling_prefix,
)

BASE_NS = 1_749_543_941_000_000_000


def part(offset: int, indexes: range) -> SinkBatch:
    return SinkBatch("sink.gcs", 0, [SinkLine(f"l{i}", "t", BASE_NS, "info", "svc", b"{}", offset, i) for i in indexes])


def test_parts_of_one_record_get_their_own_keys_and_siblings() -> None:
    head, tail = part(16, range(0, 50)), part(16, range(50, 100))
    assert object_key("p", head).endswith("-0000000000000000016-0000000000000000016.ndjson.gz")
    assert object_key("p", tail).endswith("-0000000000000000016i50-0000000000000000016.ndjson.gz")
    assert not object_key("p", tail).startswith(sibling_prefix(object_key("p", head)))
    assert not object_key("p", head).startswith(sibling_prefix(object_key("p", tail)))
    longer_retry = part(16, range(50, 80))  # a retry of the tail, cut elsewhere: the tail's sibling
    assert object_key("p", longer_retry).startswith(sibling_prefix(object_key("p", tail)))


@pytest.mark.parametrize(("engine", "level"), [("isal", 1), ("isal", 3), ("zlib", 1), ("zlib", 9)])
@pytest.mark.parametrize("size", [0, 1, COMPRESS_PIECE, COMPRESS_PIECE + 1, ISAL_PIECE + 1,
                                  3 * ISAL_PIECE + 12345])
async def test_objects_compressed_in_parallel_pieces_are_one_standard_gzip_member(size: int, level: int,
                                                                                  engine: str) -> None:
    data = (os.urandom(size // 3) + b'{"msg":"ok"}\n' * (size // 13 + 1))[:size]
    module = isal_zlib() if engine == "isal" else zlib
    assert module is not None, "isal is a dependency: make install"
    body = await gzip_parallel(data, level, module)
    assert gzip.decompress(body) == data
    reader = zlib.decompressobj(16 + zlib.MAX_WBITS)  # what an HTTP client decoding gzip reads: one member
    assert reader.decompress(body) == data
    assert reader.eof and reader.unused_data == b""
    broken = bytearray(body)
    broken[-8] ^= 1  # the CRC of the whole data, checked by every reader
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(bytes(broken))


async def test_compression_level_is_the_settings_and_trades_size_for_speed() -> None:
    data = b"".join(b'{"n":%d,"msg":"request %d done","level":"info"}\n' % (n, n * 7919 % 10007)
                    for n in range(100_000))
    fast, small = await gzip_parallel(data, 1, zlib), await gzip_parallel(data, 9, zlib)  # the reference path
    assert gzip.decompress(fast) == gzip.decompress(small) == data
    assert len(small) < len(fast)
    assert S3SinkSettings().compression_level == 1
    with pytest.raises(ValidationError):
        S3SinkSettings(compression_level=10)


async def test_the_default_deflater_is_isal_and_no_larger_than_zlib_at_level_1(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"".join(b'{"n":%d,"msg":"request %d done","level":"info"}\n' % (n, n * 7919 % 10007)
                    for n in range(100_000))
    monkeypatch.delenv("LOGWEAVE_PURE", raising=False)  # `make test-pure` sets it: this test sets it itself
    assert deflater(1) == (isal_zlib(), 1) and deflater(5) == (isal_zlib(), 1)
    assert deflater(6) == (zlib, 6) and deflater(9) == (zlib, 9)  # an operator asking for size gets zlib's
    default, reference = await gzip_parallel(data, 1), await gzip_parallel(data, 1, zlib)
    assert gzip.decompress(default) == gzip.decompress(reference) == data
    assert len(default) <= len(reference)
    monkeypatch.setenv("LOGWEAVE_PURE", "1")
    assert deflater(1) == (zlib, 1)


def test_ndjson_ends_every_document_with_a_newline() -> None:
    lines = part(1, range(3)).lines
    assert ndjson(lines) == b"{}\n{}\n{}\n"
    assert ndjson([]) == b""
