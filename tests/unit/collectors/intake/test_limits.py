"""Bounded decompression: bodies inflate up to the cap, bombs and corrupt bodies are refused."""

from __future__ import annotations

import gzip
import zlib

import pytest
import zstandard

from collectors.intake.limits import CorruptBody, LimitExceeded, UnsupportedEncoding, decode_body


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd", "identity"])
def test_inflates_up_to_the_cap_and_refuses_one_byte_more(encoding: str) -> None:
    data = b"x" * 1000
    packed = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": bytes,
              "zstd": zstandard.ZstdCompressor().compress}[encoding](data)
    assert decode_body(packed, encoding, 1000) == data
    if encoding != "identity":
        with pytest.raises(LimitExceeded) as refused:
            decode_body(packed, encoding, 999)
        assert refused.value.reason == "decompressed_too_large"


def test_concatenated_gzip_members_are_one_body() -> None:
    assert decode_body(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 10) == b"abcd"


def test_corrupt_truncated_and_unknown_encodings_are_named() -> None:
    with pytest.raises(CorruptBody, match="gzip"):
        decode_body(b"not gzip", "gzip", 100)
    with pytest.raises(CorruptBody, match="truncated"):
        decode_body(gzip.compress(b"y" * 500)[:-12], "gzip", 1000)
    with pytest.raises(CorruptBody, match="zstd"):
        decode_body(b"not zstd", "zstd", 100)
    with pytest.raises(UnsupportedEncoding, match="br"):
        decode_body(b"", "br", 100)
