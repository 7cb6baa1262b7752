"""Worker benchmark: parse + group + route throughput and latency, beside the raw aiokafka limit.

Run: `python -m tests.bench.bench_worker --lines 1000000 --out bench/worker.json`.
1. Limit: one bare aiokafka loop consuming the same raw chunks, parsing with orjson and re-chunking by
   trace id to a topic (no faust, no table), measured in this run.
   Floor: faust with the worker's two hops and no per-line work (tests/bench/faust_floor_app.py).
2. Throughput: 1M lines (10 per trace) preloaded into logs.raw; one worker running the parse and
   group stages (drains off) routes them all to sink.file; lines/s, CPU s per 100K, peak RSS.
   Peer: quixstreams (tests/bench/quixstreams_peer.py, its own venv) doing the same two hops on the
   same preloaded chunks with RocksDB state, one state update per trace per chunk; its row says
   what it leaves out, and the worker's rate and CPU per line are printed as ratios to it.
   Steps 1 and 2 run as a round, each on a fresh broker, `--rounds` times (3): this machine's speed
   varies by a third from minute to minute, so the round with the median worker rate is reported,
   with its own limit and floor, and every round is printed.
3. Latency: fixed offered loads (default 10,000, 20,000 and 50,000 lines/s, 15 s each, `--rates`) of
   lines stamped with their production time, through one more worker; a consumer of its sink.file
   reports collection-to-sink-topic p50/p99 per load, the rate achieved and whether the worker kept up.
Small records (`--lines-per-record 3`, instead of 1-3): a live node's shape, many streams each
publishing a few lines per record (`--streams` 200, `--live-rate` 4,000 lines/s, `--seconds` 30):
the worker's CPU seconds per 100K lines, the lines still behind when the feed stops (end lag) and
the latency, beside the bare aiokafka limit on records of as many lines in the same run.
`--streams-per-record 20` gathers that many streams' lines in one record (raw chunk version 2),
as the collectors do.
With KAFKA_BROKERS set, every run goes to that Kafka instead of a fresh embedded broker, on topics and
consumer groups of its own (tests/bench/brokers.py); the broker's CPU is then not on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from commands.broker import free_port
from core.codec import compressor, decompress
from core.models import P_TIME, ParsedChunk, RawBatch, RawChunk, make_raw_line, trace_partition
from core.settings import KafkaSettings, load_settings
from kafka_io.kafka_compat import install_idle_fetch_pause, pace_idle_fetches
from kafka_io.publisher import ChunkPublisher
from kafka_io.topic_admin import ensure_topics, prepare_worker_topics
from tests.bench.brokers import BenchBroker, bench_broker, broker_label, logweave_env
from tests.bench.live_floor import floor_topics, forwarded_lines, start_floor
from tests.bench.measure import Row, cpu_seconds, peak_rss_mib, table
from tests.support.processes import VENV_BIN, ManagedProcess, base_env, wait_http_ok_in_thread, worker

PARTITIONS = 4
MEASURE_PAUSE = 0.005  # seconds: the latency consumer's longest pause between empty fetches (its error)


def make_doc(n: int, ts_ns: int) -> bytes:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
    return orjson.dumps({"time": stamp, "traceId": f"trace-{n // 10:09d}", "level": "info", "service": "checkout",
                         "msg": "request handled by the checkout service; padding to a typical size", "n": n,
                         "user": "u-12345", "path": "/api/v1/cart/items"})


async def preload(bootstrap: str, lines: int, topic: str = "logs.raw", chunk: int = 1000,
                  make: Callable[[int, int], bytes] = make_doc) -> None:
    publisher = ChunkPublisher(KafkaSettings(brokers=bootstrap), topic, 256 << 20, create_topics=[])
    await publisher.start()
    acks = []
    for start in range(0, lines, chunk):
        raw = [make_raw_line(n * 300, make(n, 1_749_543_941_000_000_000 + n), "stdout")
               for n in range(start, min(start + chunk, lines))]
        acks.append(await publisher.publish(RawChunk({"kind": "file", "pod": f"p{start % 16}"},
                                                     f"file:1:{start % 16}:bench:0", time.time_ns(), raw)))
    await asyncio.gather(*acks)
    await publisher.stop()


async def raw_limit(bootstrap: str, lines: int, chunk: int, prefix: str = "") -> Row:
    """Bare aiokafka: consume raw chunks, orjson-parse every line, re-chunk by trace, produce (topics
    named with `prefix`: a run's own on an external Kafka)."""
    source, out_topic = f"{prefix}limit.raw", f"{prefix}limit.out"
    await ensure_topics(KafkaSettings(brokers=bootstrap, partitions=PARTITIONS), [source, out_topic])
    await preload(bootstrap, lines, source, chunk)
    install_idle_fetch_pause()
    compress = compressor("lz4")
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, max_partition_fetch_bytes=8 << 20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 << 20)
    await consumer.start()
    await producer.start()
    cpu0, t0, seen, futures = time.process_time(), time.perf_counter(), 0, []
    while seen < lines:
        batch = await consumer.getmany(timeout_ms=1000, max_records=50)
        for messages in batch.values():
            for message in messages:
                decoded: dict[str, Any] = orjson.loads(decompress(message.value))
                out: dict[int, list[object]] = defaultdict(list)
                for entry in decoded["lines"]:
                    doc = orjson.loads(entry[1])
                    out[trace_partition(doc["traceId"], PARTITIONS)].append([doc["traceId"], entry[1]])
                    seen += 1
                for partition, part in out.items():
                    futures.append(await producer.send(out_topic, compress(orjson.dumps(part)), partition=partition))
    await asyncio.gather(*futures)
    row = Row("raw aiokafka consume+parse+re-chunk+produce", lines, time.perf_counter() - t0,
              time.process_time() - cpu0, 0.0, "the limit")
    await consumer.stop()
    await producer.stop()
    return row


async def faust_floor(workdir: Path, bootstrap: str, lines: int, chunk: int, prefix: str = "") -> Row:
    """The same two hops in faust with no per-line work (tests/bench/faust_floor_app.py)."""
    await preload(bootstrap, lines, await floor_topics(bootstrap, prefix), chunk)
    proc, port = start_floor(workdir, bootstrap, chunk, prefix)
    try:
        while forwarded_lines(port) == 0:  # the web page answers before the consumer group has formed
            await asyncio.sleep(0.05)
        return await time_until(proc, lambda: forwarded_lines(port), lines, 600,
                                "faust floor: same two hops, records forwarded untouched", "no decode, no table")
    finally:
        proc.stop()


QUIX_PYTHON = Path(__file__).resolve().parents[2] / ".venv-quixstreams" / "bin" / "python"
QUIX_NOTE = ("peer; does not: dead-letter, parse times, normalize level/service, dedupe lines, "
             "window or close traces, apply routing rules")


async def quixstreams_peer(workdir: Path, bootstrap: str, lines: int, chunk: int, prefix: str = "") -> Row:
    """quixstreams doing the same two hops with RocksDB state (tests/bench/quixstreams_peer.py), own venv."""
    if not QUIX_PYTHON.exists():
        raise RuntimeError(f"no {QUIX_PYTHON}: `make bench` makes it (pip install -r tests/bench/quixstreams-peer.txt)")
    source = f"{prefix}logs.raw"
    await ensure_topics(KafkaSettings(brokers=bootstrap, partitions=PARTITIONS), [source])
    await preload(bootstrap, lines, source, chunk)
    progress = workdir / "quixstreams.progress"
    argv = [str(QUIX_PYTHON), "-m", "tests.bench.quixstreams_peer", "--broker", bootstrap, "--input", source,
            "--prefix", f"{prefix}qx.", "--state-dir", str(workdir / "quixstreams-state"), "--progress", str(progress)]
    env = base_env({"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PYTHONWARNINGS": "ignore"})
    proc = ManagedProcess("quixstreams-peer", argv, env, workdir / "quixstreams-peer.log", workdir).start()

    def done() -> float:
        try:
            text = progress.read_text().split()
        except FileNotFoundError:
            return 0.0
        return float(text[0]) + float(text[1]) if text else 0.0

    try:
        started = time.perf_counter()
        while done() == 0:  # topics, the changelog and the consumer group come first
            if not proc.alive() or time.perf_counter() - started > 90:
                raise RuntimeError(f"quixstreams peer routed nothing: {proc.log_tail(20)}")
            await asyncio.sleep(0.05)
        return await time_until(proc, done, lines, 600, "quixstreams parse+state+route (1 process)", QUIX_NOTE)
    finally:
        proc.stop()


async def time_until(proc: ManagedProcess, done_lines: Callable[[], float], lines: int, limit_s: float,
                     name: str, note: str) -> Row:
    """Time `proc` (wall and CPU) from now until `done_lines()` reaches `lines`; its row with peak RSS.

    Lines already through when timing starts are left out of the row, so a process that starts
    work before it answers (the floor has no readiness check) is timed on what it does from here.
    """
    cpu0, t0, before = cpu_seconds(proc.pid), time.perf_counter(), done_lines()
    while done_lines() < lines:
        if time.perf_counter() - t0 > limit_s:
            raise TimeoutError(f"{name}: not every line went through in {limit_s:.0f} s")
        await asyncio.sleep(0.1)
    return Row(name, int(lines - before), time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0,
               peak_rss_mib(proc.pid), note)


def routed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('logweave_lines_total{stage="routed"}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def throughput(workdir: Path, bootstrap: str, lines: int, chunk: int, extra_env: dict[str, str] | None = None,
                     make: Callable[[int, int], bytes] = make_doc, check: Callable[[int], None] | None = None,
                     profile: Path | None = None, prefix: str = "") -> Row:
    """The worker's bulk row; `check(web_port)` before it stops (what its /metrics say); with `profile`,
    py-spy samples it from readiness until it is stopped."""
    env = {**logweave_env(bootstrap, prefix), "LOGWEAVE_WORKER__DATA_DIR": str(workdir / "w1"),
           "LOGWEAVE_WORKER__STAGES": "parse,group", "LOGWEAVE_TRACES__GAP": "5s",
           "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h", **(extra_env or {})}
    await prepare_worker_topics(load_settings(environ=env))
    await preload(bootstrap, lines, f"{prefix}logs.raw", chunk=chunk, make=make)
    port = free_port()
    proc = worker(workdir, env, port, name="bench-worker").start()
    spy: subprocess.Popen[bytes] | None = None
    try:
        await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, proc)
        spy = profiler(proc.pid, 900, profile) if profile is not None else None
        row = await time_until(proc, lambda: routed(port), lines, 900, "worker parse+group+route (1 process)",
                               "10 lines per trace")
        if check is not None:
            check(port)
        return row
    finally:
        proc.stop()
        if spy is not None and profile is not None:  # py-spy ends with the process and writes its file
            spy.wait(timeout=60)
            print(top_frames(profile, 25))


MEASURES = ("limit", "floor", "worker", "quixstreams")


async def throughput_round(workdir: Path, lines: int, chunk: int, measures: tuple[str, ...] = MEASURES,
                           profile: Path | None = None) -> dict[str, Row]:
    """The limit, the faust floor, the worker and the quixstreams peer, one after another, each on a
    fresh broker (`measures` picks some of them); on an external Kafka (KAFKA_BROKERS), each with its
    own topics and consumer group (tests/bench/brokers.py).

    A broker's own CPU grows with what it holds (noida-db re-writes a snapshot of it), and on two
    cores it competes with the process measured: the third run on one broker would carry the
    first two runs' data."""
    workdir.mkdir(parents=True)
    found: dict[str, Row] = {}
    runs: dict[str, Callable[[BenchBroker], Awaitable[Row]]] = {
        "limit": lambda broker: raw_limit(broker.bootstrap, lines, chunk, broker.run_prefix),
        "floor": lambda broker: faust_floor(workdir, broker.bootstrap, lines, chunk, broker.run_prefix),
        "worker": lambda broker: throughput(workdir, broker.bootstrap, lines, chunk, profile=profile,
                                            prefix=broker.run_prefix),
        "quixstreams": lambda broker: quixstreams_peer(workdir, broker.bootstrap, lines, chunk, broker.run_prefix)}
    for name in measures:
        with bench_broker(workdir, name) as broker:
            found[name] = await runs[name](broker)
    return found


async def latency_worker(workdir: Path, bootstrap: str, prefix: str = "") -> tuple[ManagedProcess, int]:
    """One worker (parse + group, own topic prefix `<prefix>lat.` and group) kept for every offered load."""
    env = {"LOGWEAVE_KAFKA__BROKERS": bootstrap, "LOGWEAVE_WORKER__DATA_DIR": str(workdir / "w2"),
           "LOGWEAVE_WORKER__STAGES": "parse,group", "LOGWEAVE_WORKER__APP_ID": f"{prefix}latency",
           "LOGWEAVE_KAFKA__TOPIC_PREFIX": f"{prefix}lat."}
    await prepare_worker_topics(load_settings(environ=env))
    port = free_port()
    proc = worker(workdir, env, port, name="latency-worker").start()
    await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, proc)
    return proc, port


async def latency(bootstrap: str, rate: int, seconds: float, first: int, drain: float = 30.0,
                  lines_per_record: int | None = None, streams: int = 8,
                  worker_pid: int | None = None, streams_per_record: int = 1, prefix: str = "") -> dict[str, Any]:
    """Offer `rate` lines/s for `seconds`; collection-to-sink-topic delays of this run's lines only.

    Lines are numbered from `first` (new trace ids and stream positions per run, so the worker never
    takes them for replays of an earlier run). The worker kept up when every line arrived and the
    delivery rate (lines / first send to last arrival) stayed within 5% of the rate actually offered.
    Each 20 ms tick publishes one chunk (a collector flushing), or with `lines_per_record` records of
    that many lines, each from the next of `streams` stream ids (many pods writing a few lines each).
    With `worker_pid`, the worker's CPU seconds per 100K lines delivered (feed start to the last
    arrival) and the lines it was behind when the feed stopped (end lag) are reported too.
    """
    install_idle_fetch_pause()  # unpaced, this consumer re-fetches in a tight loop and takes a core from the worker
    # a broker that holds fetches (Kafka) would hold this one up to fetch_max_wait_ms past a line's arrival
    # whenever aiokafka left its partition out of the held fetch (app/fetch_wait.py): 10 ms, not 500
    consumer = AIOKafkaConsumer(f"{prefix}lat.sink.file", bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=None, fetch_max_wait_ms=10)
    await consumer.start()
    pace_idle_fetches(consumer, MEASURE_PAUSE)  # nothing wakes it: a short cap, or it adds up to 0.1 s to each delay
    publisher = ChunkPublisher(KafkaSettings(brokers=bootstrap), f"{prefix}lat.logs.raw", 64 << 20, create_topics=[])
    await publisher.start()
    delays: list[float] = []
    total = int(rate * seconds)
    run_start_ns = time.time_ns()
    last_arrival = [0.0]

    async def consume() -> None:
        while len(delays) < total:
            batch = await consumer.getmany(timeout_ms=500)
            now = time.time_ns()
            for messages in batch.values():
                for message in messages:
                    times = [line[P_TIME] for line in ParsedChunk.decode(message.value).lines]
                    delays.extend((now - t) / 1e9 for t in times if t >= run_start_ns)
                    last_arrival[0] = time.perf_counter()

    reader = asyncio.ensure_future(consume())
    await asyncio.sleep(0.5)  # the consumer's first fetch positions it at the end before lines flow
    per_tick = max(1, rate // 50)  # a chunk every 20 ms, like a collector flushing
    per_record = lines_per_record or per_tick
    cpu0 = cpu_seconds(worker_pid) if worker_pid is not None else 0.0
    started, n, record = time.perf_counter(), 0, 0
    while n < total:
        tick_end = min(n + per_tick, total)
        while n < tick_end:
            segments = []
            for _ in range(streams_per_record):
                lines = [make_raw_line(first + i, make_doc(first + i, time.time_ns()), "stdout")
                         for i in range(n, min(n + per_record, tick_end))]
                if not lines:
                    break
                segments.append(RawChunk({"kind": "file", "pod": f"p{record % streams}"},
                                         f"lat{rate}:{record % streams}", time.time_ns(), lines))
                n, record = n + len(lines), record + 1
            if len(segments) == 1:
                await publisher.publish(segments[0])
            else:  # a collector gathering many streams into one record (raw chunk version 2)
                await publisher.publish(RawBatch(time.time_ns(), segments), partition=record % PARTITIONS)
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
    offered_seconds = time.perf_counter() - started
    behind_at_end = total - len(delays)
    try:
        await asyncio.wait_for(reader, drain)
    except TimeoutError:
        pass  # reported below as not kept up
    finally:
        await publisher.stop()
        await consumer.stop()
    cpu = cpu_seconds(worker_pid) - cpu0 if worker_pid is not None else None
    delays.sort()
    achieved = total / offered_seconds
    delivered = len(delays) / (last_arrival[0] - started) if last_arrival[0] > started else 0.0
    found = {"offered_lines_per_s": rate, "achieved_offered_lines_per_s": round(achieved),
             "delivered_lines_per_s": round(delivered), "seconds": seconds, "lines": total,
             "samples": len(delays), "kept_up": len(delays) >= total and delivered >= 0.95 * achieved,
             "p50_s": round(delays[len(delays) // 2], 4) if delays else None,
             "p99_s": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 4) if delays else None,
             "lines_per_record": per_record, "streams": streams if lines_per_record else 8,
             "streams_per_record": streams_per_record}
    if cpu is not None:
        found.update(worker_cpu_s=round(cpu, 2), worker_cpu_s_per_100k=round(cpu / max(1, len(delays)) * 100_000, 3),
                     end_lag_lines=behind_at_end)
    return found


def describe(lat: dict[str, Any]) -> str:
    if lat["p50_s"] is None:
        return f"at {lat['offered_lines_per_s']:,} lines/s: no line arrived"
    cpu = (f", worker {lat['worker_cpu_s_per_100k']:.2f} CPU s/100K, end lag {lat['end_lag_lines']:,} lines"
           if "worker_cpu_s" in lat else "")
    return (f"at {lat['offered_lines_per_s']:,} lines/s (offered {lat['achieved_offered_lines_per_s']:,}, "
            f"delivered {lat['delivered_lines_per_s']:,}): p50 {lat['p50_s'] * 1000:,.0f} ms, "
            f"p99 {lat['p99_s'] * 1000:,.0f} ms, {lat['samples']:,}/{lat['lines']:,} lines, "
            f"{'kept up' if lat['kept_up'] else 'did NOT keep up'}{cpu}")


def profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` for `seconds` (collapsed stacks to `out`); `pip install py-spy` first."""
    out.parent.mkdir(parents=True, exist_ok=True)  # py-spy writes nothing into a folder that is not there
    argv = [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
            "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(collapsed: Path, count: int = 15) -> str:
    """The functions with the most samples in a py-spy collapsed-stack file: self and inclusive."""
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for row in collapsed.read_text().splitlines():
        stack, _, samples = row.rpartition(" ")
        frames = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")") for frame in stack.split(";")]
        n = int(samples)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    def listing(found: dict[str, int]) -> str:
        ranked = [(frame, n) for frame, n in sorted(found.items(), key=lambda kv: -kv[1]) if n < 0.8 * total]
        return "\n".join(f"  {n / total:6.1%}  {frame}" for frame, n in ranked[:count])
    return (f"\nprofile ({total:,} samples), self:\n{listing(own)}\n"
            f"inclusive (below the event loop's own frames):\n{listing(inclusive)}")


async def small_records(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The live shape: `args.lines_per_record` lines per record from `args.streams` streams at
    `args.live_rate` lines/s through one worker, beside the bare limit on the same records."""
    workdir.mkdir(parents=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    total = int(args.live_rate * args.seconds)
    with bench_broker(workdir, "limit") as broker:
        limit = await raw_limit(broker.bootstrap, total, args.lines_per_record * args.streams_per_record,
                                broker.run_prefix)
    with bench_broker(workdir, "small") as broker:
        lat_worker, _ = await latency_worker(workdir, broker.bootstrap, broker.run_prefix)
        profile = args.out.with_suffix(".profile.txt")
        spy = profiler(lat_worker.pid, args.seconds, profile) if args.profile else None
        try:
            live = await latency(broker.bootstrap, args.live_rate, args.seconds, 0, drain=60.0,
                                 lines_per_record=args.lines_per_record, streams=args.streams,
                                 worker_pid=lat_worker.pid, streams_per_record=args.streams_per_record,
                                 prefix=broker.run_prefix)
        finally:
            lat_worker.stop()
        if spy is not None:
            spy.wait(timeout=60)
            print(top_frames(profile))
    print(f"\nbroker: {broker.label}; {total:,} lines of ~250 bytes, {args.lines_per_record} per stream and "
          f"{args.streams_per_record} stream(s) per record, {args.streams} streams, offered at "
          f"{args.live_rate:,} lines/s for {args.seconds:.0f} s\n")
    print(table([limit]))
    print(f"\nworker (parse+group, live): {describe(live)}")
    print(f"worker CPU s/100K / limit CPU s/100K: {live['worker_cpu_s_per_100k'] / limit.cpu_per_100k:.1f}")
    return {"broker": broker.label, "limit": limit.as_dict(), "live": live}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rates", type=lambda text: [int(r) for r in text.split(",") if r],
                        default=[10_000, 20_000, 50_000],
                        help="offered loads for the latency runs, lines/s ('' for none)")
    parser.add_argument("--measures", type=lambda text: [m for m in text.split(",") if m], default=list(MEASURES),
                        help=f"rows of each throughput round, from {','.join(MEASURES)} (worker is always needed)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each latency run")
    parser.add_argument("--chunk", type=int, default=1000, help="lines per raw chunk (collector.chunk_lines)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds of the limit, the faust floor, the worker and quixstreams, each on a "
                             "fresh broker; "
                             "the round with the median worker rate is reported (machines vary run to run)")
    parser.add_argument("--lines-per-record", type=int, default=None,
                        help="run the small-record live mode instead: records of this many lines (e.g. 3)")
    parser.add_argument("--streams", type=int, default=200, help="stream ids the small records come from")
    parser.add_argument("--streams-per-record", type=int, default=1,
                        help="small-record mode: streams gathered in one record (version 2), as collectors do")
    parser.add_argument("--live-rate", type=int, default=4_000, help="lines/s offered in the small-record mode")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the worker (bulk: in the first round), print its top frames; pip install py-spy")
    parser.add_argument("--out", type=Path, default=Path("bench/worker.json"))
    args = parser.parse_args()
    unknown = set(args.measures) - set(MEASURES)
    if unknown or "worker" not in args.measures:
        parser.error(f"--measures: pick from {','.join(MEASURES)}, worker included (got {','.join(args.measures)})")
    workdir = Path(tempfile.mkdtemp(prefix="logweave-bench-worker-"))
    if args.lines_per_record is not None:
        try:
            found = await small_records(workdir / "small", args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        out = args.out.with_name(args.out.stem + "-small.json") if args.out == Path("bench/worker.json") else args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(found, indent=2))
        return
    measures = tuple(args.measures)
    profile = args.out.with_suffix(".profile.txt") if args.profile else None
    rounds = [await throughput_round(workdir / f"round{n}", args.lines, args.chunk, measures,
                                     profile if n == 0 else None) for n in range(args.rounds)]
    median = sorted(rounds, key=lambda found: found["worker"].rate)[len(rounds) // 2]
    row = median["worker"]
    row.note = f"median of {len(rounds)} rounds: " + ", ".join(f"{found['worker'].rate:,.0f}" for found in rounds)
    lats: list[dict[str, Any]] = []
    try:
        if args.rates:
            lats = await latency_runs(workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nbroker: {broker_label()}; {args.lines:,} lines of ~250 bytes, 10 per trace, "
          f"{args.chunk:,}-line raw chunks\n")
    for n, found in enumerate(rounds, 1):
        print(f"round {n}: " + "; ".join(f"{name} {found[name].rate:,.0f} lines/s at "
                                          f"{found[name].cpu_per_100k:.2f} CPU s/100K" for name in measures))
    print(f"\nthe round with the median worker rate:\n{table(list(median.values()))}")
    ratios = same_run_ratios(median)
    print("\n" + "; ".join(f"{name}: {ratio:.2f}" for name, ratio in ratios.items()))
    for lat in lats:
        print(f"latency collection -> sink topic {describe(lat)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"broker": broker_label(), "rows": [found.as_dict() for found in median.values()],
                                    "rounds": [[found.as_dict() for found in round_rows.values()]
                                               for round_rows in rounds],
                                    **ratios, "latency": lats}, indent=2))


def same_run_ratios(found: dict[str, Row]) -> dict[str, float]:
    """The worker's rate over each other row's of the same round; against quixstreams also its CPU per line."""
    worker_row = found["worker"]
    ratios = {f"worker_vs_{key}": round(worker_row.rate / found[name].rate, 3)
              for name, key in (("limit", "limit"), ("floor", "faust_floor"), ("quixstreams", "quixstreams"))
              if name in found}
    if "quixstreams" in found:
        ratios["worker_cpu_vs_quixstreams_cpu"] = round(worker_row.cpu_per_100k / found["quixstreams"].cpu_per_100k, 3)
    return ratios


async def latency_runs(workdir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each offered load of `args.rates` in turn through one worker on a fresh broker (or KAFKA_BROKERS)."""
    with bench_broker(workdir, "latency") as broker:
        lat_worker, _ = await latency_worker(workdir, broker.bootstrap, broker.run_prefix)
        try:
            lats, first = [], args.lines * 2
            for rate in args.rates:
                lats.append(await latency(broker.bootstrap, rate, args.seconds, first, worker_pid=lat_worker.pid,
                                          prefix=broker.run_prefix))
                first += int(rate * args.seconds)
                await asyncio.sleep(2)
        finally:
            lat_worker.stop()
    return lats


if __name__ == "__main__":
    asyncio.run(main())
