"""Types of the C extension tables/_tracefold.c (the group stage's per-line loop)."""

from typing import Any

def fold(lines: list[list[Any]], sample_lines: int, sample_chars: int,
         max_names: int) -> dict[str, list[Any]] | None: ...
