"""Types of the C extension tables/_tracefold.c (the group stage's per-line loop)."""

from typing import Any

def fold(lines: list[list[Any]], sample_lines: int, sample_chars: int,
         max_names: int) -> dict[str, list[Any]] | None: ...
def fold_raw(data: bytes, lines_start: int, lines_end: int, sources: int, sample_lines: int, sample_chars: int,
             max_names: int) -> tuple[int, list[list[Any]], dict[str, list[Any]]] | None: ...
def new_states(folds: dict[str, list[Any]], due: dict[str, tuple[int, int]], pods: list[Any], sample_lines: int,
               opened_ns: int, updated_ns: int, gap_ns: int, longest_ns: int, updates: dict[bytes, bytes | None],
               wall: list[tuple[int, str]], event: list[tuple[int, str]]) -> tuple[list[str], int | None]: ...
