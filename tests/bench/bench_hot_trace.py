"""Hot-trace benchmark: one trace of many lines groups at the rate of many small traces.

Run: `python -m tests.bench.bench_hot_trace --lines 1000000 --out bench/hot_trace.json`, or the slow test
below (`make bench` / `pytest -m slow tests/bench/bench_hot_trace.py`). Both rows run in the same
invocation, each on a fresh broker, with a whole-trace routing rule (`level_at_least: error`), as in
the issue that found a hot trace grouping at ~5,000 lines/s: `normal` spreads the lines over traces
of 10 lines, `hot` puts every line in one trace, which passes `traces.max_held_per_trace` and is
released (traces.held_overflow=release). Rate = lines grouped per second by one worker (parse + group).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from commands.broker import EmbeddedBroker, free_port
from core.models import RawChunk, make_raw_line
from core.settings import KafkaSettings, load_settings
from kafka_io.publisher import ChunkPublisher
from kafka_io.topic_admin import prepare_worker_topics
from tests.bench.bench_worker import time_until
from tests.bench.measure import Row, table
from tests.support.processes import wait_http_ok_in_thread, worker

BASE_NS = 1_749_543_941_000_000_000
RULES = ("routing:\n  rules:\n    - name: error-traces\n      mode: trace\n      sinks: [file]\n"
         "      level_at_least: error\n")


def doc(n: int, trace: str) -> bytes:
    seconds, nanos = divmod(BASE_NS + n * 1000, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
    return orjson.dumps({"time": stamp, "traceId": trace, "level": "info", "service": "checkout",
                         "msg": "request handled by the checkout service; padding to a typical size", "n": n})


async def preload(bootstrap: str, lines: int, hot: bool, chunk: int = 1000) -> None:
    publisher = ChunkPublisher(KafkaSettings(brokers=bootstrap), "logs.raw", 256 << 20, create_topics=[])
    await publisher.start()
    acks = []
    for start in range(0, lines, chunk):
        raw = [make_raw_line(n * 300, doc(n, "hot" if hot else f"trace-{n // 10:09d}"), "stdout")
               for n in range(start, min(start + chunk, lines))]
        acks.append(await publisher.publish(RawChunk({"kind": "file", "pod": f"p{start % 16}"},
                                                     f"file:1:{start % 16}:bench:0", time.time_ns(), raw)))
    await asyncio.gather(*acks)
    await publisher.stop()


def grouped(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('logweave_lines_total{stage="grouped"}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def run_one(workdir: Path, lines: int, hot: bool, policy: str = "release") -> Row:
    name = ("hot" if hot else "normal") + ("" if policy == "release" else f", held_overflow={policy}")
    workdir.mkdir(parents=True)
    broker = EmbeddedBroker(workdir / "broker", free_port()).start(log_path=workdir / "broker.log")
    try:
        config = workdir / "rules.yaml"
        config.write_text(RULES)
        env = {"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_WORKER__DATA_DIR": str(workdir / "data"),
               "LOGWEAVE_WORKER__STAGES": "parse,group", "LOGWEAVE_CONFIG": str(config),
               "LOGWEAVE_TRACES__GAP": "1h", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
               "LOGWEAVE_TRACES__HELD_OVERFLOW": policy}
        await prepare_worker_topics(load_settings(environ=env))
        await preload(broker.bootstrap, lines, hot)
        port = free_port()
        proc = worker(workdir, env, port, name=f"{name}-worker").start()
        try:
            await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, proc)
            note = f"one trace, {policy} past max_held_per_trace" if hot else "10 lines per trace"
            return await time_until(proc, lambda: grouped(port), lines, 900, f"group with a trace rule: {name}", note)
        finally:
            proc.stop()
    finally:
        broker.stop(kill=True)


async def measure(lines: int, out: Path | None, with_drop: bool = False) -> tuple[Row, Row]:
    with tempfile.TemporaryDirectory(prefix="logweave-hot-") as tmp:
        normal = await run_one(Path(tmp) / "normal", lines, hot=False)
        hot = await run_one(Path(tmp) / "hot", lines, hot=True)
        extra = [await run_one(Path(tmp) / "hot-drop", lines, hot=True, policy="drop")] if with_drop else []
    print(table([normal, hot, *extra]))
    ratio = hot.rate / normal.rate
    print(f"hot / normal = {ratio:.2f}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"lines": lines, "normal_lines_per_s": normal.rate, "hot_lines_per_s": hot.rate,
                                   "ratio": ratio}, indent=2))
    return normal, hot


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_a_hot_trace_groups_at_half_the_normal_rate_or_better() -> None:
    normal, hot = await measure(1_000_000, Path("bench/hot_trace.json"))
    assert hot.rate >= 0.5 * normal.rate, f"hot trace {hot.rate:,.0f} lines/s vs normal {normal.rate:,.0f} lines/s"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--with-drop", action="store_true", help="add a row for the hot trace under held_overflow=drop")
    args = parser.parse_args()
    asyncio.run(measure(args.lines, args.out, args.with_drop))
