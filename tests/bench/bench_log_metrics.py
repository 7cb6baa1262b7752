"""Cost of metrics from logs: the worker's CPU per 100K lines without and with one counter and one
histogram rule (docs/metrics-from-logs.md).

Run: `python -m tests.bench.bench_log_metrics --lines 300000 --rounds 2`.
1. In process: the rules' own work (`LogMetrics.observe`) on parsed lines, beside the parse of the
   same lines (`LineParser.parse_chunk`) measured in the same run.
2. The bulk worker path of tests/bench/bench_worker.py (one worker, parse + group + route, lines
   preloaded in logs.raw), each run on a fresh broker, alternating without and with the rules;
   every line carries `duration_ms` and one in 20 is an error, so both rules work on every line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agents.line_parser import LineParser
from agents.log_metrics import LogMetrics
from commands.broker import EmbeddedBroker, free_port
from core.log_metric_series import LogMetricsCollector
from core.log_metric_settings import LogMetricSettings
from core.models import RawChunk, make_raw_line
from core.settings import ParseSettings
from tests.bench.bench_worker import make_doc, throughput
from tests.bench.measure import Row, table

RULES: list[dict[str, Any]] = [
    {"name": "logweave_log_errors_total", "type": "counter", "match": {"level_at_least": "error"},
     "labels": ["service", "namespace"]},
    {"name": "logweave_log_duration_ms", "type": "histogram", "field": "duration_ms", "labels": ["service"],
     "buckets": [5, 10, 25, 50, 100, 250, 500, 1000]},
]
RULES_ENV = {"LOGWEAVE_LOG_METRICS__RULES": yaml.safe_dump(RULES, default_flow_style=True, width=10_000).strip()}


def make_metric_doc(n: int, ts_ns: int) -> bytes:
    """bench_worker's line, with a duration and one error in 20."""
    doc = orjson.loads(make_doc(n, ts_ns))
    doc["duration_ms"] = (n * 7919) % 1200
    if n % 20 == 0:
        doc["level"] = "error"
    return orjson.dumps(doc)


def in_process(lines: int, chunk: int = 1000) -> tuple[float, float]:
    """CPU s per 100K lines of parse, and of the rules' work, on the same lines."""
    parser = LineParser(ParseSettings())
    metrics = LogMetrics(LogMetricSettings(rules=RULES), LogMetricsCollector())
    chunks = [RawChunk({"kind": "file", "namespace": f"ns{start % 3}", "pod": f"p{start % 16}"},
                       f"file:1:{start % 16}:bench:0", time.time_ns(),
                       [make_raw_line(n * 300, make_metric_doc(n, 1_749_543_941_000_000_000 + n), "stdout")
                        for n in range(start, min(start + chunk, lines))]) for start in range(0, lines, chunk)]
    started = time.process_time()
    parsed = [parser.parse_chunk(c, 4)[0] for c in chunks]
    parse_cpu = time.process_time() - started
    started = time.process_time()
    for outputs in parsed:
        for out in outputs.values():
            metrics.observe(out.lines, out.sources)()  # counted and exposed (its persist)
    observe_cpu = time.process_time() - started
    return parse_cpu / lines * 100_000, observe_cpu / lines * 100_000


def counted(port: int, lines: int) -> None:
    """The worker's rules counted every error line and observed every line's duration."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    errors = sum(s.value for s in samples if s.name == "logweave_log_errors_total")
    observed = sum(s.value for s in samples if s.name == "logweave_log_duration_ms_count")
    expected = (lines + 19) // 20
    if errors != expected or observed != lines:
        raise SystemExit(f"the rules counted {errors} errors (expected {expected}) and {observed} durations "
                         f"(expected {lines})")


async def worker_run(workdir: Path, lines: int, chunk: int, with_rules: bool) -> Row:
    broker = EmbeddedBroker(workdir / "broker", free_port()).start(log_path=workdir / "broker.log")
    try:
        row = await throughput(workdir, broker.bootstrap, lines, chunk, RULES_ENV if with_rules else None,
                               make=make_metric_doc, check=(lambda port: counted(port, lines)) if with_rules else None)
    finally:
        broker.stop(kill=True)
    row.name = f"worker parse + group + route, {'1 counter + 1 histogram rule' if with_rules else 'no metric rules'}"
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    parse_cpu, observe_cpu = in_process(min(args.lines, 200_000))
    print(f"in process: parse {parse_cpu:.3f} CPU s/100K, metric rules {observe_cpu:.3f} CPU s/100K "
          f"({observe_cpu / parse_cpu:.0%} of parse)")
    workdir = Path(tempfile.mkdtemp(prefix="logweave-bench-logmetrics-"))
    rows: list[Row] = []
    try:
        for n in range(args.rounds):
            for with_rules in (False, True):
                rows.append(await worker_run(workdir / f"r{n}-{int(with_rules)}", args.lines, args.chunk, with_rules))
                print(f"{rows[-1].name}: {rows[-1].cpu_per_100k:.3f} CPU s/100K, load {os.getloadavg()}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows))
    without = sum(r.cpu for r in rows[0::2]) / sum(r.lines for r in rows[0::2]) * 100_000
    with_ = sum(r.cpu for r in rows[1::2]) / sum(r.lines for r in rows[1::2]) * 100_000
    pairs = sorted(b.cpu_per_100k / a.cpu_per_100k - 1 for a, b in zip(rows[0::2], rows[1::2], strict=True))
    print(f"\nworker CPU s/100K: without rules {without:.3f}, with {with_:.3f}: {with_ / without - 1:+.1%} "
          f"(per round: {', '.join(f'{p:+.1%}' for p in pairs)}); the rules' own work in process: "
          f"{observe_cpu / without:.1%} of the worker's CPU without them; load after: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
