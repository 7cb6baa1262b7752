"""One changelog record carries many key writes and deletes, byte-exact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tables.changelog_frames import pack, unpack


@given(st.dictionaries(st.binary(max_size=40), st.none() | st.binary(max_size=200), max_size=50))
def test_round_trip(updates: dict[bytes, bytes | None]) -> None:
    assert dict(unpack(pack(updates))) == updates


def test_empty_value_differs_from_delete() -> None:
    assert list(unpack(pack({b"a": b"", b"b": None}))) == [(b"a", b""), (b"b", None)]
