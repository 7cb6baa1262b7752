"""End-to-end benchmark: N lines through collector -> worker -> file sink, beside the raw limit.

Run: `python -m tests.bench.bench_pipeline --lines 1000000 --out bench/pipeline.json`.
In the same run and on the same broker (noida-db, printed), it measures the raw aiokafka limit:
produce the same lines as 1,000-line chunks and consume them back, no processing. Then it writes
CRI pod logs, starts the collector and one worker as real processes, and times until the file sink
holds every line. Per process: CPU seconds per 100K lines and peak RSS (from /proc); the worker's CPU is
taken once it has also closed every trace of the run (a trace gap after its last line), and split into
user and system time (mostly the kernel writing the sink's ~700 MB, whose cost on a shared VM varies
far more than the worker's own).
Then the drain alone: a second worker running only the drain stage (its own consumer group) reads the
sink topic the first one filled, records exactly as the group stage wrote them, into a second file
sink directory; its row is the drain and file sink's share of the full path, beside its idle CPU.
With KAFKA_BROKERS set, all of it runs on that Kafka instead, on topics and consumer groups of its own
(tests/bench/brokers.py), and the broker's CPU row is left out: that broker is not on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from commands.broker import free_port
from commands.demo import cri_line, rfc3339_nano
from core.settings import KafkaSettings, load_settings
from kafka_io.kafka_compat import install_idle_fetch_pause
from kafka_io.topic_admin import ensure_topics, prepare_worker_topics
from tests.bench.brokers import BenchBroker, bench_broker, logweave_env
from tests.bench.measure import Row, ScrapePacer, cpu_seconds, cpu_split, peak_rss_mib, scrape_metric, table
from tests.support.processes import ManagedProcess, file_collector, wait_http_ok_in_thread, worker

BASE_NS = 1_749_543_941_000_000_000
TRACE_LINES = 10  # consecutive lines per trace (line_bytes)


def line_bytes(n: int) -> bytes:
    doc = {"time": rfc3339_nano(BASE_NS + n * 1000), "traceId": f"trace-{n // TRACE_LINES:09d}", "level": "info",
           "service": "checkout", "msg": "request handled by the checkout service; padding to a typical size",
           "n": n, "user": "u-12345", "path": "/api/v1/cart/items"}
    return orjson.dumps(doc)


def write_pod_logs(root: Path, lines: int, files: int) -> int:
    """CRI logs, TRACE_LINES consecutive lines per trace (traces stay in one file); returns bytes written."""
    handles = []
    for i in range(files):
        directory = root / f"bench_pod-{i:03d}_{i:032x}" / "app"
        directory.mkdir(parents=True)
        handles.append(open(directory / "0.log", "wb", buffering=1 << 20))  # noqa: SIM115
    total = 0
    for n in range(lines):
        data = cri_line(BASE_NS + n * 1000, "").encode()[:-1] + line_bytes(n) + b"\n"
        handles[(n // TRACE_LINES) % files].write(data)
        total += len(data)
    for handle in handles:
        handle.close()
    return total


async def raw_limit(bootstrap: str, lines: int, prefix: str = "") -> tuple[Row, Row]:
    """The same lines as 1,000-line chunks: bare aiokafka produce, then bare consume."""
    topic = f"{prefix}bench.raw"
    await ensure_topics(KafkaSettings(brokers=bootstrap, partitions=4), [topic])
    payloads = [orjson.dumps({"lines": [line_bytes(n).decode() for n in range(s, min(s + 1000, lines))]})
                for s in range(0, lines, 1000)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 << 20)
    await producer.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    futures = [await producer.send(topic, p, partition=i % 4) for i, p in enumerate(payloads)]
    await asyncio.gather(*futures)
    produce = Row("raw aiokafka produce (1,000-line chunks)", lines, time.perf_counter() - t0,
                  time.process_time() - cpu0, 0.0, "the limit")
    await producer.stop()
    install_idle_fetch_pause()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    cpu0, t0, seen = time.process_time(), time.perf_counter(), 0
    while seen < lines:
        batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
        for messages in batch.values():
            for message in messages:
                seen += len(orjson.loads(message.value)["lines"])
    consume = Row("raw aiokafka consume + orjson", lines, time.perf_counter() - t0, time.process_time() - cpu0, 0.0,
                  "the limit")
    await consumer.stop()
    return produce, consume


async def traces_closed(port: int, traces: int, worker_proc: ManagedProcess, timeout: float = 120) -> None:
    """Wait until the worker's metrics count `traces` closed traces, scraping them as ScrapePacer says (the
    worker answers each scrape inside the CPU window this measures)."""
    started = time.perf_counter()
    pacer = ScrapePacer(traces)
    while (closed := await asyncio.to_thread(scrape_metric, port, "logweave_traces_closed_total")) < traces:
        if not worker_proc.alive():
            raise RuntimeError(f"the worker died:\n{worker_proc.log_tail()}")
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"the worker closed {closed:.0f} of {traces} traces in {timeout:g} s")
        await asyncio.sleep(pacer.pause(closed))


def sink_line_count(out: Path) -> int:
    total = 0
    for segment in out.glob("*/*.ndjson"):
        with open(segment, "rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return total


async def pipeline(workdir: Path, broker: BenchBroker, lines: int, files: int) -> list[Row]:
    env = {**logweave_env(broker.bootstrap, broker.run_prefix), "LOGWEAVE_WORKER__DATA_DIR": str(workdir / "worker"),
           "LOGWEAVE_SINKS__FILE__DIRECTORY": str(workdir / "out"),
           "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(workdir / "checkpoints"), "LOGWEAVE_COLLECTOR__METRICS_PORT": "0",
           "LOGWEAVE_TRACES__GAP": "5s", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}
    await prepare_worker_topics(load_settings(environ=env))
    pods = workdir / "pods"
    write_pod_logs(pods, lines, files)
    port = free_port()
    worker_proc = worker(workdir, env, port).start()
    await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, worker_proc)
    broker_cpu0 = broker.cpu_seconds() or 0.0
    collector = file_collector(workdir, env, [str(pods / "*" / "*" / "*.log")])
    user0, system0 = cpu_split(worker_proc.pid)
    t0 = time.perf_counter()
    collector.start()
    try:
        while True:
            count = sink_line_count(workdir / "out")
            if count >= lines:
                break
            if not worker_proc.alive() or not collector.alive():
                raise RuntimeError(f"a process died:\n{worker_proc.log_tail()}\n{collector.log_tail()}")
            if time.perf_counter() - t0 > 900:
                raise TimeoutError(f"only {count} of {lines} lines reached the sink in 900 s")
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - t0
        collector_cpu = cpu_seconds(collector.pid)
        # the closes of the run's traces are part of its work: they come a trace gap after their last line,
        # inside the timed window on a slow run and after it on a fast one, so the worker's CPU is taken
        # once every trace is closed (its idle CPU meanwhile is about 2% of a core)
        await traces_closed(port, (lines + TRACE_LINES - 1) // TRACE_LINES, worker_proc)
        user, system = cpu_split(worker_proc.pid)
        worker_user, worker_system = user - user0, system - system0
        worker_cpu = worker_user + worker_system
        split = (f"user {worker_user / lines * 100_000:.3f} + system {worker_system / lines * 100_000:.3f} "
                 "(system: mostly the kernel writing the sink's bytes)")
        rows = [
            Row("pipeline end to end (collector -> file sink)", lines, elapsed, worker_cpu + collector_cpu, 0.0,
                f"{files} files"),
            Row("  file collector process", lines, elapsed, collector_cpu, peak_rss_mib(collector.pid)),
            Row("  worker process (parse+group+route+drain)", lines, elapsed, worker_cpu,
                peak_rss_mib(worker_proc.pid), f"closing every trace included; {split}"),
        ]
        if not broker.external:  # an external Kafka's CPU is not on this machine
            rows.append(Row("  broker (noida-db)", lines, elapsed, (broker.cpu_seconds() or 0.0) - broker_cpu0,
                            broker.peak_rss_mib() or 0.0))
        return rows
    finally:
        collector.stop()
        worker_proc.stop()


async def drain_alone(workdir: Path, broker: BenchBroker, lines: int) -> Row:
    """A drain-only worker (own consumer group) re-reading the sink topic the pipeline filled."""
    out = workdir / "out-drain"
    env = {**logweave_env(broker.bootstrap, broker.run_prefix, "drain-bench"),
           "LOGWEAVE_WORKER__DATA_DIR": str(workdir / "worker-drain"), "LOGWEAVE_WORKER__STAGES": "drain",
           "LOGWEAVE_SINKS__FILE__DIRECTORY": str(out)}
    await prepare_worker_topics(load_settings(environ=env))  # its own changelog; the sink topic is there
    port = free_port()
    proc = worker(workdir, env, port, name="worker-drain").start()
    try:
        await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, proc)
        cpu0, t0, before = cpu_seconds(proc.pid), time.perf_counter(), sink_line_count(out)
        while (count := sink_line_count(out)) < lines:
            if not proc.alive():
                raise RuntimeError(f"the drain worker died:\n{proc.log_tail()}")
            if time.perf_counter() - t0 > 600:
                raise TimeoutError(f"the drain worker wrote {count} of {lines} lines in 600 s")
            await asyncio.sleep(0.2)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        if count != lines:
            raise RuntimeError(f"the drain worker wrote {count} lines of {lines}: a replay must add no duplicate")
        idle0 = cpu_seconds(proc.pid)
        await asyncio.sleep(5)
        idle = (cpu_seconds(proc.pid) - idle0) / 5
        return Row("  worker drain alone (sink topic re-read)", lines - before, elapsed, cpu,
                   peak_rss_mib(proc.pid), f"idle {idle:.1%} of a core")
    finally:
        proc.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/pipeline.json"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="logweave-bench-"))
    with bench_broker(workdir, "pipeline") as broker:
        produce, consume = await raw_limit(broker.bootstrap, args.lines, broker.run_prefix)
        rows = await pipeline(workdir, broker, args.lines, args.files)
        rows.append(await drain_alone(workdir, broker, args.lines))
    all_rows = [produce, consume, *rows]
    print(f"\nbroker: {broker.label}; {args.lines:,} lines of ~250 bytes\n")
    print(table(all_rows))
    ratio = rows[0].rate / min(produce.rate, consume.rate)
    print(f"\npipeline / raw limit (slower of produce and consume): {ratio:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"broker": broker.label, "lines": args.lines,
                                    "rows": [r.as_dict() for r in all_rows], "pipeline_vs_limit": round(ratio, 3)},
                                   indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
