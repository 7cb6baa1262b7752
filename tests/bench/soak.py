"""`make soak`: broker, worker and a steady producer for 30 minutes; memory and lag over time.

Not in CI. A benchmark shows how fast a stage runs for a minute; a soak shows whether it can run
for good: memory that creeps up (an unbounded cache, traces never closed) or lag that keeps growing
(a worker slower than its load) only show over time. The producer offers a fixed load (default
5,000 lines/s of ~250-byte JSON lines, 10 per trace) to logs.raw as raw chunks, as a collector would;
one worker runs every stage with the file sink. Every 10 s it samples the worker's and the broker's
RSS and CPU, the worker group's consumer lag (end minus committed offsets) on logs.raw, logs.parsed
and sink.file, and the lines the file sink confirmed. The verdict, over the second half (the first
is warm-up), fails the run (exit 1) when
- the worker's RSS grows more than --max-rss-growth percent (default 20), or
- lag keeps growing: the worker falls behind by more than 1% of the load (least-squares slope of
  the lag in seconds of traffic) and is more than 10 s behind at the end.
The broker (noida-db) keeps everything in memory (RSS ~2.7x the bytes it stores): the
default load stores about 2 GB in 30 minutes; --max-broker-gib stops the run before memory runs out.

    python -m tests.bench.soak --minutes 30 --rate 5000 --out bench/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from commands.broker import free_port
from core.models import RawChunk, make_raw_line
from core.settings import KafkaSettings, load_settings
from kafka_io.publisher import ChunkPublisher
from kafka_io.topic_admin import prepare_worker_topics
from tests.bench.bench_worker import make_doc
from tests.bench.measure import cpu_seconds, tree_pids
from tests.support.kafka import start_broker
from tests.support.processes import wait_http_ok_in_thread, worker

GROUP = "logweave"  # the worker's app id is its consumer group
LAG_TOPICS = ("logs.raw", "logs.parsed", "sink.file")
BEHIND_SECONDS, BEHIND_SLOPE = 10.0, 0.01


@dataclass
class Sample:
    t: float  # seconds since the load started
    produced: int  # lines acknowledged by the broker
    written: int  # lines the file sink confirmed
    lag: dict[str, int]  # records, per topic
    ends: dict[str, int]  # end offsets summed over partitions, per topic
    worker_rss_mib: float
    worker_cpu_pct: float
    broker_rss_mib: float
    broker_cpu_pct: float


def rss_mib(pid: int) -> float:
    total = 0
    for member in tree_pids(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                total += next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total / 1024


def tree_cpu(pid: int) -> float:
    total = 0.0
    for member in tree_pids(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            continue
    return total


def sink_lines_written(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('logweave_sink_lines_written_total{sink="file"}'):
                return int(float(line.rsplit(" ", 1)[1]))
    return 0


class LagReader:
    """End offsets (a group-less consumer) minus the worker group's committed offsets (the admin API)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.consumer.start()
        await self.admin.start()
        await self.consumer._client.force_metadata_update()
        self.partitions = [TopicPartition(topic, p) for topic in LAG_TOPICS
                           for p in sorted(self.consumer.partitions_for_topic(topic) or [])]

    async def read(self) -> tuple[dict[str, int], dict[str, int]]:
        ends = await self.consumer.end_offsets(self.partitions)
        committed = await self.admin.list_consumer_group_offsets(GROUP)
        lag = dict.fromkeys(LAG_TOPICS, 0)
        end_sums = dict.fromkeys(LAG_TOPICS, 0)
        for tp in self.partitions:
            done = committed.get(tp)
            lag[tp.topic] += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
            end_sums[tp.topic] += ends[tp]
        return lag, end_sums

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()


async def produce(bootstrap: str, rate: int, stop: asyncio.Event, acked: list[int]) -> None:
    """`rate` lines/s as raw chunks every 20 ms on 8 streams, like collectors flushing; `acked[0]` counts."""
    publisher = ChunkPublisher(KafkaSettings(brokers=bootstrap), "logs.raw", 64 << 20, create_topics=[])
    await publisher.start()
    per_tick = max(1, rate // 50)
    started, n = time.perf_counter(), 0
    try:
        while not stop.is_set():
            lines = [make_raw_line(n + i, make_doc(n + i, time.time_ns()), "stdout") for i in range(per_tick)]
            stream = (n // per_tick) % 8
            ack = await publisher.publish(RawChunk({"kind": "file", "namespace": "soak", "pod": f"soak-{stream}",
                                                    "container": "app"}, f"soak:{stream}", time.time_ns(), lines))
            ack.add_done_callback(counter(acked, len(lines)))
            n += per_tick
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
    finally:
        await publisher.stop()


def counter(acked: list[int], lines: int) -> Callable[[asyncio.Future[None]], None]:
    def count(future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            acked[0] += lines
    return count


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def lag_seconds(samples: list[Sample]) -> list[float]:
    """Each sample's worst topic lag in seconds of that topic's own traffic (records/s over the run)."""
    first, last = samples[0], samples[-1]
    span = max(last.t - first.t, 1e-9)
    rates = {topic: max((last.ends[topic] - first.ends[topic]) / span, 1e-9) for topic in LAG_TOPICS}
    return [max(s.lag[topic] / rates[topic] for topic in LAG_TOPICS) for s in samples]


def verdict(samples: list[Sample], max_rss_growth_pct: float) -> dict[str, Any]:
    half = [s for s in samples if s.t >= samples[-1].t / 2] or samples[-1:]
    behind = lag_seconds(samples)
    behind_half = [(s.t, b) for s, b in zip(samples, behind, strict=True) if s in half]
    growth = half[-1].worker_rss_mib - half[0].worker_rss_mib
    growth_pct = 100 * growth / half[0].worker_rss_mib if half[0].worker_rss_mib else 0.0
    trend = slope(behind_half)
    lag_growing = trend > BEHIND_SLOPE and behind[-1] > BEHIND_SECONDS
    rss_growing = growth_pct > max_rss_growth_pct
    return {"second_half_from_s": round(half[0].t), "worker_rss_growth_mib": round(growth, 1),
            "worker_rss_growth_pct": round(growth_pct, 1), "max_rss_growth_pct": max_rss_growth_pct,
            "worker_rss_max_mib": round(max(s.worker_rss_mib for s in samples), 1),
            "broker_rss_growth_mib_per_min": round(60 * slope([(s.t, s.broker_rss_mib) for s in samples]), 1),
            "max_lag_records": {t: max(s.lag[t] for s in samples) for t in LAG_TOPICS},
            "max_lag_seconds": round(max(behind), 2), "end_lag_seconds": round(behind[-1], 2),
            "lag_trend_s_per_min": round(60 * trend, 3),
            "lag_growing": lag_growing, "rss_growing": rss_growing, "ok": not (lag_growing or rss_growing)}


def render(samples: list[Sample], result: dict[str, Any], rate: int, max_rows: int = 40) -> str:
    step = max(1, -(-len(samples) // max_rows))
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    behind = dict(zip([id(s) for s in samples], lag_seconds(samples), strict=True))
    out = [f"| {'t':>6} | {'produced':>10} | {'written':>10} | {'lag raw':>7} | {'lag parsed':>10} | "
           f"{'lag sink':>8} | {'behind s':>8} | {'worker RSS':>10} | {'worker CPU':>10} | {'broker RSS':>10} | "
           f"{'broker CPU':>10} |", "|" + "|".join("-" * (w + 2) for w in (6, 10, 10, 7, 10, 8, 8, 10, 10, 10, 10))
           + "|"]
    for s in shown:
        out.append(f"| {int(s.t) // 60:>3}:{int(s.t) % 60:02d} | {s.produced:>10,} | {s.written:>10,} | "
                   f"{s.lag['logs.raw']:>7,} | {s.lag['logs.parsed']:>10,} | {s.lag['sink.file']:>8,} | "
                   f"{behind[id(s)]:>8.2f} | {s.worker_rss_mib:>6.0f} MiB | {s.worker_cpu_pct:>8.0f} % | "
                   f"{s.broker_rss_mib:>6.0f} MiB | {s.broker_cpu_pct:>8.0f} % |")
    r = result
    out += ["", f"load: {rate:,} lines/s offered; lag in records (end minus the worker group's committed offset); "
                "'behind s' = the worst topic's lag in seconds of its own traffic",
            f"worker RSS over the second half (from {r['second_half_from_s']} s): "
            f"{r['worker_rss_growth_mib']:+.1f} MiB ({r['worker_rss_growth_pct']:+.1f}%, limit "
            f"{r['max_rss_growth_pct']:.0f}%), peak {r['worker_rss_max_mib']:.0f} MiB",
            f"broker RSS trend: {r['broker_rss_growth_mib_per_min']:+.1f} MiB/min (it keeps every record in memory)",
            f"max lag: {r['max_lag_records']} records, {r['max_lag_seconds']:.2f} s behind; at the end "
            f"{r['end_lag_seconds']:.2f} s; second-half trend {r['lag_trend_s_per_min']:+.3f} s/min",
            "verdict: " + ("OK" if r["ok"] else "FAILED: " + ", ".join(
                [why for why, bad in (("worker RSS grew past the limit", r["rss_growing"]),
                                      ("lag keeps growing (the worker does not keep up)", r["lag_growing"])) if bad]))]
    return "\n".join(out)


async def soak(workdir: Path, args: argparse.Namespace) -> tuple[list[Sample], str]:
    """Run the load for `args.minutes`; return the samples and why it stopped early ('' if it did not)."""
    broker = start_broker(workdir / "broker")
    assert broker.process is not None
    port = free_port()
    env = {"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_WORKER__DATA_DIR": str(workdir / "worker"),
           "LOGWEAVE_SINKS__ENABLED": "file", "LOGWEAVE_SINKS__FILE__DIRECTORY": str(workdir / "out")}
    proc = None
    samples: list[Sample] = []
    stopped = ""
    try:
        await prepare_worker_topics(load_settings(environ=env))
        proc = worker(workdir, env, port, name="soak-worker").start()
        await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, proc)
        lag = LagReader(broker.bootstrap)
        await lag.start()
        stop, acked = asyncio.Event(), [0]
        producer = asyncio.ensure_future(produce(broker.bootstrap, args.rate, stop, acked))
        started = time.perf_counter()
        cpu_before = (tree_cpu(proc.pid), tree_cpu(broker.process.pid), started)
        try:
            while (now := time.perf_counter()) - started < args.minutes * 60:
                await asyncio.sleep(max(0.0, started + (len(samples) + 1) * args.interval - now))
                if producer.done():
                    producer.result()  # raises the producer's error
                if not proc.alive():
                    raise RuntimeError(f"the worker exited:\n{proc.log_tail()}")
                records, ends = await lag.read()
                cpu_now = (tree_cpu(proc.pid), tree_cpu(broker.process.pid), time.perf_counter())
                wall = cpu_now[2] - cpu_before[2]
                sample = Sample(round(cpu_now[2] - started, 1), acked[0], sink_lines_written(port), records, ends,
                                rss_mib(proc.pid), 100 * (cpu_now[0] - cpu_before[0]) / wall,
                                rss_mib(broker.process.pid), 100 * (cpu_now[1] - cpu_before[1]) / wall)
                cpu_before = cpu_now
                samples.append(sample)
                print(f"{int(sample.t) // 60:>3}:{int(sample.t) % 60:02d} produced {sample.produced:,} written "
                      f"{sample.written:,} lag {records} worker {sample.worker_rss_mib:.0f} MiB "
                      f"{sample.worker_cpu_pct:.0f}% broker {sample.broker_rss_mib:.0f} MiB "
                      f"{sample.broker_cpu_pct:.0f}%", flush=True)
                if sample.broker_rss_mib > args.max_broker_gib * 1024:
                    stopped = f"broker RSS {sample.broker_rss_mib:.0f} MiB > --max-broker-gib {args.max_broker_gib}"
                    break
        finally:
            stop.set()
            await asyncio.gather(producer, return_exceptions=True)
            await lag.stop()
    finally:
        if proc is not None:
            proc.stop()
        broker.stop(kill=True)
    return samples, stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=5_000, help="offered lines/s")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--max-rss-growth", type=float, default=20.0,
                        help="percent the worker's RSS may grow over the second half")
    parser.add_argument("--max-broker-gib", type=float, default=16.0, help="stop early past this broker RSS")
    parser.add_argument("--out", type=Path, default=Path("bench/soak.json"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="logweave-soak-"))
    print(f"soak: {args.minutes:g} min at {args.rate:,} lines/s, a sample every {args.interval:g} s "
          f"(noida-db broker, one worker, file sink; work dir {workdir})", flush=True)
    try:
        samples, stopped = asyncio.run(soak(workdir, args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if len(samples) < 2:
        print("soak: fewer than two samples, no verdict")
        return 1
    result = verdict(samples, args.max_rss_growth)
    if stopped:
        result.update(ok=False, stopped_early=stopped)
    print("\n" + render(samples, result, args.rate) + (f"\nstopped early: {stopped}" if stopped else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"minutes": args.minutes, "rate": args.rate, "interval_s": args.interval,
                                    "broker": "noida-db", "verdict": result,
                                    "samples": [asdict(s) for s in samples]}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
