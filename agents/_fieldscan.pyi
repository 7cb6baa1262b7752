"""Types of the C extension agents/_fieldscan.c (a number under a top-level key of a JSON object)."""

from collections.abc import Callable
from typing import Any

def top_number(text: str, key: str) -> float | bool | None: ...
def histogram(lines: list[list[Any]], text_at: int, field: str, bounds: list[float], keys: list[Any], skip: object,
              series_of: dict[Any, list[float]],
              new_series: Callable[[Any], list[float]]) -> tuple[int, int, list[int]]: ...
