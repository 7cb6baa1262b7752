"""Multiline joining: built-in detectors on real-shaped traces, patterns, limits, timeout, stream order.

The corpora in tests/data/multiline are what the runtimes print by default (a Spring Boot error with
a suppressed and a causing exception, chained Python tracebacks, a Go panic with two goroutines, a
Node.js crash); each must come out as the records listed, with the position of their first line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collectors.multiline import CompiledRule, MultilineJoiner, rule_for
from core.models import FLAG_BASE64, FLAG_TRUNCATED
from core.rule_settings import MultilineRule

DATA = Path(__file__).parents[2] / "data" / "multiline"


def join(rule: dict[str, Any], lines: list[str], streams: list[str] | None = None) -> list[list[Any]]:
    joiner = MultilineJoiner(CompiledRule(MultilineRule(**rule)))
    out = []
    for n, text in enumerate(lines):
        out += joiner.push([n, text, (streams or ["stdout"] * len(lines))[n], 0, 0], n, 0.0)
    out += joiner.flush_all()
    return [raw for raw, _ in out]


@pytest.mark.parametrize(("detector", "first_lines"), [
    ("java", [0, 12, 13]),
    ("python", [0, 14, 19]),  # an uncaught traceback joins the line before it, as logging.exception's does
    ("go", [0, 1, 16]),
    ("nodejs", [0, 1, 14]),
])
def test_builtin_detector_joins_its_corpus(detector: str, first_lines: list[int]) -> None:
    lines = (DATA / f"{'node' if detector == 'nodejs' else detector}.log").read_text().splitlines()
    records = join({"detectors": [detector]}, lines)
    assert [r[0] for r in records] == first_lines
    bounds = [*first_lines, len(lines)]
    assert [r[1] for r in records] == ["\n".join(lines[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def test_without_the_detector_each_line_stays_alone() -> None:
    lines = (DATA / "java.log").read_text().splitlines()
    assert len(join({"detectors": ["go"]}, lines)) == len(lines)


def test_start_pattern_joins_everything_until_the_next_start() -> None:
    lines = ["2023-11-14 a", "  more", "not a date", "2023-11-15 b", "x"]
    records = join({"start": r"^\d{4}-\d{2}-\d{2} "}, lines)
    assert [(r[0], r[1]) for r in records] == [(0, "2023-11-14 a\n  more\nnot a date"), (3, "2023-11-15 b\nx")]


def test_continuation_pattern() -> None:
    records = join({"continuation": r"^\s"}, ["a", " b", "c", "\td"])
    assert [r[1] for r in records] == ["a\n b", "c\n\td"]


def test_streams_never_mix_and_records_leave_in_position_order() -> None:
    lines = ["err head", "out 1", "  err cont", "out 2", "  out 2 cont", "err next"]
    streams = ["stderr", "stdout", "stderr", "stdout", "stdout", "stderr"]
    records = join({"continuation": r"^\s"}, lines, streams)
    assert [(r[0], r[2], r[1]) for r in records] == [
        (0, "stderr", "err head\n  err cont"), (1, "stdout", "out 1"), (3, "stdout", "out 2\n  out 2 cont"),
        (5, "stderr", "err next")]
    positions = [r[0] for r in records]
    assert positions == sorted(positions)


def test_a_closed_record_waits_for_an_earlier_open_one_of_the_other_stream() -> None:
    joiner = MultilineJoiner(CompiledRule(MultilineRule(continuation=r"^\s")))
    assert joiner.push([0, "err head", "stderr", 0, 0], 0, 0.0) == []
    assert joiner.push([1, "out 1", "stdout", 0, 0], 1, 0.0) == []
    assert joiner.push([2, "out 2", "stdout", 0, 0], 2, 0.0) == []  # "out 1" closed, held behind "err head"
    assert joiner.min_resume == 0
    released = joiner.push([3, "err next", "stderr", 0, 0], 3, 0.0)
    assert [raw[0] for raw, _ in released] == [0, 1]
    assert joiner.min_resume == 2


def test_limits_split_records() -> None:
    lines = ["start", *[f"  frame {n}" for n in range(9)]]
    assert [r[0] for r in join({"continuation": r"^\s", "max_lines": 4}, lines)] == [0, 4, 8]
    big = ["start", " " + "x" * 900, " " + "y" * 900]
    assert [r[0] for r in join({"continuation": r"^\s", "max_bytes": 1024}, big)] == [0, 2]


def test_flush_timeout_closes_an_idle_record() -> None:
    joiner = MultilineJoiner(CompiledRule(MultilineRule(continuation=r"^\s", flush_timeout=1.0)))
    joiner.push([0, "a", "stdout", 0, 0], 0, 10.0)
    joiner.push([1, " b", "stdout", 0, 0], 1, 10.5)
    assert joiner.flush_due(11.4) == []
    ((raw, resume),) = joiner.flush_due(11.5)
    assert (raw[0], raw[1], resume) == (0, "a\n b", 0) and joiner.min_resume is None


def test_flags_resume_and_undecodable_lines() -> None:
    joiner = MultilineJoiner(CompiledRule(MultilineRule(continuation=r"^\s")))
    joiner.push([10, "a", "stdout", 5, 0], 7, 0.0)  # a merged partial line: it began at byte 7
    joiner.push([20, " b", "stdout", 6, FLAG_TRUNCATED], 20, 0.0)
    out = joiner.push([30, "AAEC", "stdout", 7, FLAG_BASE64], 30, 0.0)
    assert out == [([10, "a\n b", "stdout", 5, FLAG_TRUNCATED], 7), ([30, "AAEC", "stdout", 7, FLAG_BASE64], 30)]


def test_rule_selection_and_validation() -> None:
    rules = [MultilineRule(detectors=["java"], namespaces=["shop"], containers=["api"]),
             MultilineRule(detectors=["go"], paths=["/var/log/pods/*/gateway/*.log"]),
             MultilineRule(detectors=["python"], labels={"lang": "python"})]
    pick = rule_for
    assert pick(rules, {"namespace": "shop", "container": "api"}).rule is rules[0]  # type: ignore[union-attr]
    assert pick(rules, {"path": "/var/log/pods/x/gateway/0.log"}).rule is rules[1]  # type: ignore[union-attr]
    assert pick(rules, {"labels": {"lang": "python"}}).rule is rules[2]  # type: ignore[union-attr]
    assert pick(rules, {"namespace": "shop", "container": "db"}) is None
    with pytest.raises(ValueError, match="needs detectors, start or continuation"):
        MultilineRule()
    with pytest.raises(ValueError, match="invalid"):
        MultilineRule(start="([")
