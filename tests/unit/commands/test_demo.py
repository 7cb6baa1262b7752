"""The demo writes valid CRI pod logs, a restarted demo never repeats its trace ids, and the demo's metric
rules find their fields in its lines."""

from __future__ import annotations

from pathlib import Path

import orjson

from agents.line_parser import LineParser
from agents.log_metrics import LogMetrics
from commands.demo import run_demo
from core.log_metric_series import LogMetricsCollector
from core.models import RawChunk, make_raw_line
from core.rules import load_rules_file
from core.settings import ParseSettings


def trace_ids(root: Path) -> set[str]:
    ids = set()
    for log in root.rglob("0.log"):
        for line in log.read_text().splitlines():
            content = line.split(" ", 3)[3]
            if content.startswith("{") and "traceId" in content:
                ids.add(orjson.loads(content)["traceId"])
    return ids


async def test_each_start_uses_new_trace_ids(tmp_path: Path) -> None:
    await run_demo(tmp_path / "a", rate=100_000, pods=3, duration=0.05)
    await run_demo(tmp_path / "b", rate=100_000, pods=3, duration=0.05)
    first, second = trace_ids(tmp_path / "a"), trace_ids(tmp_path / "b")
    assert first and second and not first & second


async def test_a_given_seed_repeats_the_same_ids(tmp_path: Path) -> None:
    await run_demo(tmp_path / "a", rate=1000, pods=2, duration=0.02, seed=7)
    await run_demo(tmp_path / "b", rate=1000, pods=2, duration=0.02, seed=7)
    a, b = trace_ids(tmp_path / "a"), trace_ids(tmp_path / "b")
    assert a and (a <= b or b <= a)


async def test_the_dev_rules_metrics_count_the_demo_lines(tmp_path: Path) -> None:
    """deploy/dev-rules.yaml (what `make run` watches) is valid, and its metric rules find their fields
    in the demo's lines: errors by service, and a duration on every JSON line with a trace id."""
    rules = load_rules_file(Path(__file__).resolve().parents[3] / "deploy" / "dev-rules.yaml")
    collector = LogMetricsCollector()
    metrics = LogMetrics(rules.log_metrics, collector)
    await run_demo(tmp_path, rate=100_000, pods=5, duration=0.05, seed=3)
    parser, traced = LineParser(ParseSettings()), 0
    for log in tmp_path.rglob("0.log"):
        contents = [line.split(" ", 3)[3] for line in log.read_text().splitlines()]
        traced += sum(1 for c in contents if c.startswith("{") and "traceId" in c)
        raw = [make_raw_line(n, c.encode(), "stdout") for n, c in enumerate(contents)]
        outputs, _ = parser.parse_chunk(RawChunk({"kind": "file", "namespace": "demo-system"}, str(log), 1, raw), 1)
        for chunk in outputs.values():
            metrics.observe(chunk.lines, chunk.sources)()
    errors, durations = collector.stores["logweave_log_errors_total"], collector.stores["logweave_log_duration_ms"]
    assert errors.counts and all(namespace == "demo-system" for _, namespace in errors.counts)
    assert sum(sum(series[:-1]) for series in durations.histograms.values()) == traced  # every bucket but the sum
    assert not durations.skipped
