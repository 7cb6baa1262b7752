"""CRI, docker json-file and plain parsing, and format detection."""

from __future__ import annotations

from collectors.files.formats import detect_format, parse_cri, parse_docker, parse_line


def test_cri_full_and_partial() -> None:
    assert parse_cri(b"2025-06-10T08:25:41.630702460Z stdout F {\"a\":1}") == (
        1749543941_630702460, "stdout", False, b'{"a":1}')
    assert parse_cri(b"2025-06-10T08:25:41Z stderr P part ") == (1749543941_000000000, "stderr", True, b"part ")
    assert parse_cri(b"2025-06-10T08:25:41Z stdout F") == (1749543941_000000000, "stdout", False, b"")


def test_cri_rejects_other_shapes() -> None:
    assert parse_cri(b"hello world") is None
    assert parse_cri(b"2025-06-10T08:25:41Z stdin F x") is None
    assert parse_line("cri", b"not cri at all") == (0, "", False, b"not cri at all")


def test_docker_lines_and_split_lines() -> None:
    full = parse_docker(b'{"log":"hi\\n","stream":"stderr","time":"2025-06-10T08:25:41.5Z"}')
    assert full == (1749543941_500000000, "stderr", False, b"hi")
    split = parse_docker(b'{"log":"no newline","stream":"stdout","time":"2025-06-10T08:25:41Z"}')
    assert split is not None and split[2] is True
    assert parse_docker(b'{"msg":"not docker"}') is None


def test_detection() -> None:
    assert detect_format(b"2025-06-10T08:25:41Z stdout F x") == "cri"
    assert detect_format(b'{"log":"x\\n","stream":"stdout","time":"2025-06-10T08:25:41Z"}') == "docker"
    assert detect_format(b'{"traceId":"abc","msg":"app json"}') == "plain"
    assert detect_format(b"Jun 10 08:25:41 host app: hi") == "plain"
