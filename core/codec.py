"""Chunk payload compression applied by Logweave itself, detected on read by magic bytes.

aiokafka compresses lz4 at level 9, which costs four times the whole produce path (measured on two cores), so
producers may compress chunk payloads here at a fast level instead and leave Kafka compression off.
A plain chunk is JSON and starts with `{`, so the lz4 frame and zstd magics can never be confused
with it; readers accept every form whatever the producer's setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
Codec = Literal["none", "lz4", "zstd"]


def compressor(codec: str) -> Callable[[bytes], bytes]:
    """Return a function compressing chunk payloads with `codec` (none, lz4 or zstd)."""
    if codec == "none":
        return lambda data: data
    if codec == "lz4":
        import lz4.frame

        return lambda data: lz4.frame.compress(data, compression_level=0)
    if codec == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=1)
        return cctx.compress
    raise ValueError(f"unknown payload codec {codec!r}; allowed: none, lz4, zstd")


def is_compressed(data: bytes) -> bool:
    """True for a payload `compressor` compressed (lz4 or zstd); False for a plain JSON chunk."""
    return data[:4] in (LZ4_MAGIC, ZSTD_MAGIC)


def decompress(data: bytes) -> bytes:
    """Undo `compressor` whatever codec was used; plain payloads pass through untouched."""
    head = data[:4]
    if head == LZ4_MAGIC:
        import lz4.frame

        return bytes(lz4.frame.decompress(data))
    if head == ZSTD_MAGIC:
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data
