"""Types of the C extension agents/parsers/_logfmt.c (logfmt lines as their records' JSON text)."""

from typing import Any

def to_json(lines: list[Any], json_first: bool, renamed: tuple[str, ...]) -> list[Any] | None: ...
