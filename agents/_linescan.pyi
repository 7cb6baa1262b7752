"""Types of the C extension agents/_linescan.c (the parse stage's per-line loop, the drain's splice)."""

from collections.abc import Callable, Sequence
from typing import Any

def split(lines: list[Any], fields: Sequence[Sequence[str]], levels: dict[str, str], partitions: int,
          max_bytes: int, fallback_ns: int, sid: str, rfc_fast: bool, epoch_unit: int,
          slow: Callable[[list[Any]], list[Any] | None]) -> dict[int, list[list[Any]]]: ...
def sink_lines(lines: list[Any], sources: list[bytes], reserved_key: str, digests: dict[str, str],
               digest_of: Callable[[str], str], line_type: type[Any], offset: int, ordered: bool,
               fallback: Callable[[list[Any], int], Any]) -> tuple[list[Any], int]: ...
def chunk_layout(data: bytes) -> tuple[int, int, int, int, bool, int | None] | None: ...
def sink_lines_raw(data: bytes, lines_start: int, lines_end: int, sources: list[bytes], reserved_key: str,
                   digests: dict[str, str], digest_of: Callable[[str], str], line_type: type[Any], offset: int,
                   ordered: bool) -> tuple[list[Any], int] | None: ...
def split_raw(data: bytes, fields: Sequence[Sequence[str]], levels: dict[str, str], partitions: int, max_bytes: int,
              rfc_fast: bool, epoch_unit: int, source_of: Callable[[int, int, int, int, int, int], bool | int],
              slow: Callable[[int, int, int], tuple[int, bytes] | None], renamed: tuple[str, ...]
              ) -> tuple[int, int, list[dict[int, tuple[bytes, bytes]]]] | None: ...
def join_parsed(head: bytes, pieces: list[tuple[int, bytes, bytes]], tail: bytes) -> bytes: ...
