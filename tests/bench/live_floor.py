"""The faust floor at a live row's shape: what faust alone costs to move that row's records.

A live node's worker takes few lines per Kafka record (the collector sends one record per partition
per linger), so much of its CPU goes to moving records, not lines. This feeds the faust floor
(tests/bench/faust_floor_app.py: the worker's two hops, fan-out to four partitions, no decoding,
parsing, grouping or table) at the records per second and lines per record the live row's worker
took from logs.raw, on a fresh broker, and reports its CPU per 100K lines. The live worker's own
figure is read against it: a CPU target below the floor cannot be met by work on the lines.

Run by tests/bench/bench_live.py after each pipeline row (skip with --no-floor). Standalone,
`python -m tests.bench.live_floor --records-per-s 10 --lines-per-record 400` feeds that shape to the
faust floor and to the same topology on bare aiokafka (tests/bench/aiokafka_floor_app.py), each on a
fresh broker, one after the other, and prints both: what faust adds to moving the records, and what
moving them costs on this broker without faust. The floor's topics,
process and count page (`floor_topics`, `start_floor`, `forwarded_lines`) are also the bulk floor's
(tests/bench/bench_worker.py).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaProducer

from commands.broker import free_port
from core.settings import KafkaSettings
from kafka_io.topic_admin import ensure_topics
from tests.bench.brokers import bench_broker, broker_label
from tests.bench.measure import cpu_seconds
from tests.support.processes import VENV_BIN, ManagedProcess, base_env, wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
Floor = Literal["faust", "aiokafka"]  # faust_floor_app.py, or the same topology on bare aiokafka
# a live row's line: a JSON document of about the size the live writers write
LINE = (b'{"time":"2026-12-05T10:00:00.000Z","level":"info","traceId":"4bf92f3577b34da6a3ce929d0e0e4736",'
        b'"service":"checkout","msg":"' + b"x" * 120 + b'"}\n')


async def floor_topics(bootstrap: str, prefix: str = "") -> str:
    """Create the floor's three topics; the name of its input topic."""
    names = [f"{prefix}floor.{hop}" for hop in ("raw", "parsed", "sink")]
    await ensure_topics(KafkaSettings(brokers=bootstrap, partitions=PARTITIONS), names)
    return names[0]


def start_floor(workdir: Path, bootstrap: str, lines_per_record: int, prefix: str = "",
                name: str = "faust-floor") -> tuple[ManagedProcess, int]:
    """Start the floor app counting `lines_per_record` per record; (its process, its web port) once the
    count page answers."""
    port = free_port()
    env = base_env({"FLOOR_BROKER": bootstrap, "FLOOR_WEB_PORT": str(port), "FLOOR_CHUNK_LINES": str(lines_per_record),
                    "FLOOR_TOPIC_PREFIX": prefix, "PYTHONPATH": str(ROOT)})
    argv = [str(VENV_BIN / "faust"), "-A", "tests.bench.faust_floor_app", "worker", "-l", "info",
            "--web-port", str(port)]
    proc = ManagedProcess(name, argv, env, workdir / f"{name}.log", workdir).start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/floor/count", 90, proc)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def forwarded_lines(port: int) -> float:
    """The lines the floor has passed on to its sink topic."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/floor/count", timeout=5) as response:
        return float(json.loads(response.read())["lines"])


def start_aiokafka_floor(workdir: Path, bootstrap: str, lines_per_record: int,
                         prefix: str = "") -> tuple[ManagedProcess, Callable[[], float]]:
    """Start the floor's topology on bare aiokafka (tests/bench/aiokafka_floor_app.py); (its process, what
    reads how many lines it forwarded)."""
    count_file = workdir / "aiokafka-floor.count"
    env = base_env({"FLOOR_BROKER": bootstrap, "FLOOR_CHUNK_LINES": str(lines_per_record), "FLOOR_TOPIC_PREFIX": prefix,
                    "FLOOR_COUNT_FILE": str(count_file), "PYTHONPATH": str(ROOT)})
    argv = [str(VENV_BIN / "python"), "-m", "tests.bench.aiokafka_floor_app"]
    proc = ManagedProcess("aiokafka-floor-live", argv, env, workdir / "aiokafka-floor-live.log", workdir).start()

    def forwarded() -> float:
        try:
            return float(count_file.read_text() or 0)
        except FileNotFoundError:
            return 0.0
    return proc, forwarded


def floor_at(workdir: Path, records_per_s: float, lines_per_record: int, seconds: float,
             warmup: float = 10.0, app: Floor = "faust") -> dict[str, Any]:
    """Feed the floor `records_per_s` records of `lines_per_record` lines, round robin over its partitions,
    for `warmup` then `seconds` (measured); its CPU in the window per 100K lines fed. `app`: "faust" (the
    floor the live rows report) or "aiokafka" (the same topology without faust)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with bench_broker(workdir, f"floor-{app}") as broker:
        return asyncio.run(_run(workdir, broker.bootstrap, broker.run_prefix, records_per_s, max(1, lines_per_record),
                                seconds, warmup, app))


async def _run(workdir: Path, bootstrap: str, prefix: str, records_per_s: float, lines_per_record: int,
               seconds: float, warmup: float, app: Floor) -> dict[str, Any]:
    topic = await floor_topics(bootstrap, prefix)
    if app == "aiokafka":
        proc, forwarded_now = start_aiokafka_floor(workdir, bootstrap, lines_per_record, prefix)
    else:
        proc, port = start_floor(workdir, bootstrap, lines_per_record, prefix, "faust-floor-live")
        forwarded_now = functools.partial(forwarded_lines, port)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=16 << 20)
    try:
        await producer.start()
        record = LINE * lines_per_record
        sent = 0

        async def feed(duration: float) -> int:
            nonlocal sent
            started, fed = time.monotonic(), 0
            while time.monotonic() - started < duration:
                await producer.send(topic, record, partition=sent % PARTITIONS)
                sent += 1
                fed += 1
                await asyncio.sleep(max(0.0, started + fed / records_per_s - time.monotonic()))
            return fed

        await feed(warmup)  # the group formed and every partition's first fetch done
        cpu0 = cpu_seconds(proc.pid)
        fed = await feed(seconds)
        cpu = cpu_seconds(proc.pid) - cpu0
        await producer.flush()
        forwarded = await _wait_forwarded(forwarded_now, sent * (lines_per_record // PARTITIONS) * PARTITIONS, proc)
        lines = fed * lines_per_record
        return {"records_per_s": round(records_per_s, 2), "lines_per_record": lines_per_record, "seconds": seconds,
                "cpu_s": round(cpu, 2), "cpu_per_100k": round(cpu / lines * 100_000, 3) if lines else None,
                "forwarded_all": forwarded}
    finally:
        await producer.stop()
        proc.stop()


async def _wait_forwarded(forwarded_now: Callable[[], float], lines: int, proc: ManagedProcess,
                          timeout: float = 30.0) -> bool:
    """Whether the floor forwarded every fed line (a floor that fell behind is not a floor)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(forwarded_now) >= lines:
            return True
        if not proc.alive():
            return False
        await asyncio.sleep(0.2)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records-per-s", type=float, default=10.0, help="logs.raw records fed per second")
    parser.add_argument("--lines-per-record", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window, after a 10 s warm-up")
    parser.add_argument("--workdir", type=Path, help="a new directory for the brokers and logs (default: a temp one)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="logweave-live-floor-"))
    print(f"broker: {broker_label()}; {args.records_per_s:g} records/s x {args.lines_per_record} lines, "
          f"{args.seconds:g} s measured")
    apps: tuple[Floor, ...] = ("faust", "aiokafka")
    for app in apps:
        found = floor_at(workdir / app, args.records_per_s, args.lines_per_record, args.seconds, app=app)
        print(f"{app + ' floor':15} {found['cpu_per_100k']:>7} CPU s/100K lines "
              f"({found['cpu_s']} CPU s in the window; forwarded every line: {found['forwarded_all']})")


if __name__ == "__main__":
    main()
