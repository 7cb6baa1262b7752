"""CRI, docker json-file and plain parsing, and format detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.files.formats import detect_format, parse_cri, parse_docker, parse_line
from collectors.files.kube_paths import is_pod_log
from core.models import FLAG_BAD_PREFIX, FLAG_BAD_TIME

CRI = b"2025-06-10T08:25:41Z stdout F {\"traceId\":\"t\"}"
DOCKER = b'{"log":"x\\n","stream":"stdout","time":"2025-06-10T08:25:41Z"}'


def test_cri_full_and_partial() -> None:
    assert parse_cri(b"2025-06-10T08:25:41.630702460Z stdout F {\"a\":1}") == (
        1749543941_630702460, "stdout", False, b'{"a":1}', 0)
    assert parse_cri(b"2025-06-10T08:25:41Z stderr P part ") == (1749543941_000000000, "stderr", True, b"part ", 0)
    assert parse_cri(b"2025-06-10T08:25:41Z stdout F") == (1749543941_000000000, "stdout", False, b"", 0)


def test_cri_rejects_other_shapes() -> None:
    assert parse_cri(b"hello world") is None
    assert parse_cri(b"2025-06-10T08:25:41Z stdin F x") is None
    assert parse_line("cri", b"not cri at all") == (0, "", False, b"not cri at all", FLAG_BAD_PREFIX)


def test_cri_time_that_does_not_parse_is_kept_and_flagged() -> None:
    """The line is accepted (0: the collection time stands in) and says so in its flags."""
    assert parse_line("cri", b"2025-13-45T99:99:99Z stdout F {}") == (0, "stdout", False, b"{}", FLAG_BAD_TIME)
    assert parse_line("cri", b"yesterday stdout F {}") == (0, "stdout", False, b"{}", FLAG_BAD_TIME)


@pytest.mark.parametrize("stamp", [b"9999-12-31T23:59:59.000000000Z", b"2262-04-12T00:00:00Z",
                                   b"1600-01-01T00:00:00.5Z"])
def test_cri_time_outside_what_a_chunk_carries_is_flagged_not_sent(stamp: bytes) -> None:
    """A time beyond signed 64-bit nanoseconds would make the whole record unencodable (and its re-read too)."""
    parsed = parse_line("cri", stamp + b" stdout F {}")
    assert parsed == (0, "stdout", False, b"{}", FLAG_BAD_TIME)
    assert parse_line("cri", b"2262-04-11T23:47:16.854775807Z stdout F {}")[0] == (1 << 63) - 1  # the last one


def test_docker_lines_and_split_lines() -> None:
    full = parse_docker(b'{"log":"hi\\n","stream":"stderr","time":"2025-06-10T08:25:41.5Z"}')
    assert full == (1749543941_500000000, "stderr", False, b"hi", 0)
    split = parse_docker(b'{"log":"no newline","stream":"stdout","time":"2025-06-10T08:25:41Z"}')
    assert split is not None and split[2] is True
    assert parse_docker(b'{"msg":"not docker"}') is None


def test_detection() -> None:
    assert detect_format(b"2025-06-10T08:25:41Z stdout F x") == "cri"
    assert detect_format(b'{"log":"x\\n","stream":"stdout","time":"2025-06-10T08:25:41Z"}') == "docker"
    assert detect_format(b'{"traceId":"abc","msg":"app json"}') == "plain"
    assert detect_format(b"Jun 10 08:25:41 host app: hi") == "plain"


def test_one_bad_first_line_does_not_decide_the_format() -> None:
    assert detect_format([b"garbage first line", CRI, CRI, CRI]) == "cri"
    assert detect_format([b"garbage", DOCKER, DOCKER]) == "docker"
    assert detect_format([CRI, b"plain one", b"plain two", b"plain three"]) == "plain"


def test_pod_log_layout_is_cri_or_docker_by_definition() -> None:
    assert detect_format([b"garbage", b"more garbage"], pod_log=True) == "cri"
    assert detect_format([], pod_log=True) == "cri"
    assert detect_format([b"garbage", DOCKER, b"x"], pod_log=True) == "docker"
    assert detect_format([b"garbage", b"more garbage"]) == "plain"


@pytest.mark.parametrize(("path", "expected"), [
    ("/var/log/pods/shop_web-1_0000aaaa-bbbb-cccc-dddd-000000000001/app/0.log", True),
    ("/var/log/containers/web-1_shop_app-0123abcd.log", True),
    ("/var/log/syslog", False),
    ("/srv/app/logs/app.log", False),
])
def test_pod_log_paths(path: str, expected: bool) -> None:
    assert is_pod_log(Path(path)) is expected


def test_pod_directory_layout_anywhere_counts_as_a_pod_log(tmp_path: Path) -> None:
    """The kubelet layout mounted elsewhere (a hostPath at another place) is recognised by its shape."""
    path = tmp_path / "shop_web-1_0000aaaa-bbbb-cccc-dddd-000000000001" / "app" / "0.log"
    assert is_pod_log(path) and not is_pod_log(tmp_path / "app" / "0.log")
