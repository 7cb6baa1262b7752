"""Durations and sizes as users write them in the seed tool's variables."""

from __future__ import annotations

import pytest

from core.durations import parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("48h", 172800), ("1m30s", 90), ("250ms", 0.25),
                                               ("2d", 172800), (3, 3), ("1.5", 1.5), ("100us", 1e-4)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 parsecs", "s5", "-1s", "5s5", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [("1MiB", 1048576), ("512KiB", 524288), ("5MB", 5_000_000), (42, 42)])
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="KiB"):
        parse_size("12 parsecs")
