"""Types of the C extension sinks/_segment.c (the file sink's line selection, sinks/packed.py)."""

def select_lines(documents: bytes, table: bytes, streams: list[str], marks: dict[str, int], ordered: bool,
                 offset: int, first_index: int, after_offset: int,
                 after_index: int) -> tuple[bytes, int, int] | None: ...
