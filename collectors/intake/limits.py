"""Body limits: bytes as sent, bytes after decompression, and refusing decompression bombs.

A compressed body is inflated through a stream with a cap: decompression stops as soon as the output
would pass `max_decoded_bytes`, so a 10 KB body that inflates to gigabytes costs at most the cap,
never the gigabytes. gzip, deflate and zstd are accepted (the encodings Fluent Bit, Vector and the
OpenTelemetry exporters send).
"""

from __future__ import annotations

import io
import zlib

import zstandard

ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", "zstd")


class LimitExceeded(Exception):
    """Over a configured limit; `reason` is the metric label, the message names the setting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnsupportedEncoding(Exception):
    pass


class CorruptBody(Exception):
    pass


def decode_body(body: bytes, encoding: str, cap: int) -> bytes:
    """`body` decompressed per its Content-Encoding; LimitExceeded past `cap` bytes of output."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(body, cap, zlib.MAX_WBITS | (16 if encoding != "deflate" else 0))
    if encoding == "zstd":
        return _unzstd(body, cap)
    raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported (use one of {', '.join(ENCODINGS)})")


def _bomb(cap: int) -> LimitExceeded:
    return LimitExceeded("decompressed_too_large",
                         f"body inflates past intake.max_decoded_bytes ({cap} bytes): refused unread")


def _inflate(body: bytes, cap: int, wbits: int) -> bytes:
    out = bytearray()
    data = body
    try:
        while data:
            inflater = zlib.decompressobj(wbits)
            out += inflater.decompress(data, cap + 1 - len(out))
            if len(out) > cap or inflater.unconsumed_tail:
                raise _bomb(cap)
            if not inflater.eof:
                raise CorruptBody("compressed body is truncated")
            data = inflater.unused_data  # concatenated gzip members
    except zlib.error as exc:
        raise CorruptBody(f"body is not valid {'gzip' if wbits & 16 else 'deflate'} data ({exc})") from None
    return bytes(out)


def _unzstd(body: bytes, cap: int) -> bytes:
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
        with reader:
            out = reader.read(cap + 1)
            while len(out) <= cap:
                more = reader.read(cap + 1 - len(out))
                if not more:
                    break
                out += more
    except zstandard.ZstdError as exc:
        raise CorruptBody(f"body is not valid zstd data ({exc})") from None
    if len(out) > cap:
        raise _bomb(cap)
    return out
