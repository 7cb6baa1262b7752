"""`logweave intake` beside its limit: HTTP (NDJSON, 1,000-line requests, 8 concurrent clients) and
Fluent forward (PackedForward, 1,000 entries per message, chunk acks, 8 connections), each against a
bare server that only reads the body and produces it as one record (tests/bench/intake_floor.py),
in the same run on the same broker. Before those, on the fresh broker, the ack latency (client-side
p50/p99 of HTTP requests of LATENCY_LINES lines, paced at 5K and 20K lines/s) of the intake and of
the bare server, interleaved: a broker stall then shows on both rows, not as the intake's. CPU is the
server process's own (from /proc), clients run in this process.

    python -m tests.bench.bench_intake --lines 400000 --out var/bench/intake.json

With KAFKA_BROKERS set, the intake, the bare servers and rsyslog produce to that Kafka instead, on
topics of this run's own (tests/bench/brokers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import msgpack
import orjson

from commands.broker import free_port
from tests.bench.brokers import bench_broker, logweave_env
from tests.bench.intake_syslog import syslog_rows
from tests.bench.measure import Row, cpu_seconds, peak_rss_mib, table
from tests.support.processes import intake, wait_http_ok

REQUEST_LINES = 1000
LATENCY_LINES = 100  # per request in the latency runs: 50 and 200 requests/s, enough samples for a p99
CLIENTS = 8


def ndjson_body(tag: str, n: int, line_bytes: int, lines: int = REQUEST_LINES) -> bytes:
    pad = "x" * max(0, line_bytes - 120)
    return b"\n".join(orjson.dumps({"traceId": f"{tag}-{n}-{i % 50}", "time": "2026-12-02T10:00:00.123456789Z",
                                    "level": "info", "msg": f"{tag} request {n} line {i}", "pad": pad})
                      for i in range(lines))


def forward_message(tag: str, n: int, line_bytes: int) -> bytes:
    pad = "x" * max(0, line_bytes - 120)
    now = int(time.time())
    entries = b"".join(msgpack.packb([now, {"traceId": f"{tag}-{n}-{i % 50}", "level": "info",
                                            "msg": f"{tag} message {n} line {i}", "pad": pad}])
                       for i in range(REQUEST_LINES))
    return msgpack.packb(["bench", entries, {"chunk": f"{tag}-{n}", "size": REQUEST_LINES}])


async def http_load(url: str, requests: int, line_bytes: int, rate: float = 0.0,
                    lines: int = REQUEST_LINES) -> list[float]:
    """Send `requests` NDJSON requests over CLIENTS connections (paced at `rate` requests/s when
    given); latencies in seconds."""
    bodies = [ndjson_body("h", n, line_bytes, lines) for n in range(min(requests, 64))]
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    start = time.monotonic()

    async def client() -> None:
        async with aiohttp.ClientSession() as session:
            while not queue.empty():
                n = queue.get_nowait()
                if rate:
                    await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
                began = time.monotonic()
                async with session.post(url, data=bodies[n % len(bodies)],
                                        headers={"Content-Type": "application/x-ndjson"}) as response:
                    assert response.status == 202, await response.text()
                latencies.append(time.monotonic() - began)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return latencies


async def forward_load(port: int, messages: int, line_bytes: int) -> None:
    payloads = [forward_message("f", n, line_bytes) for n in range(min(messages, 64))]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(messages):
        queue.put_nowait(n)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        feed = msgpack.Unpacker(raw=False)
        while not queue.empty():
            n = queue.get_nowait()
            writer.write(payloads[n % len(payloads)])
            while True:
                feed.feed(await reader.read(1024))
                if any("ack" in answer for answer in feed):
                    break
        writer.close()

    await asyncio.gather(*(connection() for _ in range(CLIENTS)))


def measured(name: str, pid: int, lines: int, run: object, note: str = "") -> tuple[Row, object]:
    cpu0, began = cpu_seconds(pid), time.monotonic()
    result = asyncio.run(run)  # type: ignore[arg-type]
    return Row(name, lines, time.monotonic() - began, cpu_seconds(pid) - cpu0, peak_rss_mib(pid), note), result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def best(rows: list[Row]) -> Row:
    """The fastest of interleaved rounds: on a shared machine, the round least disturbed by others."""
    return max(rows, key=lambda row: row.rate)


def start_floor(mode: str, bootstrap: str, run_prefix: str = "") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-m", "tests.bench.intake_floor", mode, str(port), bootstrap,
                              f"{run_prefix}floor.{mode}"], stdout=subprocess.PIPE)
    assert floor.stdout is not None and floor.stdout.readline().strip() == b"ready", f"the {mode} floor did not start"
    return floor, port


def latency_runs(url: str, floor_url: str, pid: int, floor_pid: int,
                 args: argparse.Namespace) -> list[tuple[Row, dict[str, float]]]:
    """Client-side ack latency of the intake and of the bare server, interleaved, at each paced rate."""
    out = []
    for rate in (float(r) for r in args.paced_rates.split(",")):
        requests = int(rate * args.paced_seconds / LATENCY_LINES)
        for name, target, target_pid in (("intake HTTP", url, pid), ("bare aiohttp (limit)", floor_url, floor_pid)):
            row, latencies = measured(f"{name} paced at {rate:,.0f} lines/s", target_pid, requests * LATENCY_LINES,
                                      http_load(target, requests, args.line_bytes, rate / LATENCY_LINES, LATENCY_LINES))
            assert isinstance(latencies, list)
            quantiles = {q: round(percentile(latencies, p) * 1000, 1) for q, p in (("p50", 0.5), ("p99", 0.99))}
            row.note = f"{LATENCY_LINES}-line requests: ack p50 {quantiles['p50']} ms, p99 {quantiles['p99']} ms"
            out.append((row, quantiles))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="lines per measured round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of intake and limit; best kept")
    parser.add_argument("--line-bytes", type=int, default=250)
    parser.add_argument("--paced-rates", default="5000,20000", help="lines/s of the latency runs")
    parser.add_argument("--paced-seconds", type=float, default=8, help="length of each latency run")
    parser.add_argument("--syslog-lines", type=int, default=100_000, help="lines of the syslog rows; 0: none")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    requests = args.lines // REQUEST_LINES
    lines = requests * REQUEST_LINES
    rounds: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp, bench_broker(Path(tmp), "intake") as broker:
        workdir = Path(tmp)
        http_port, forward_port, syslog_port = free_port(), free_port(), free_port()
        env = {**logweave_env(broker.bootstrap, broker.run_prefix), "LOGWEAVE_INTAKE__HTTP_PORT": str(http_port),
               "LOGWEAVE_INTAKE__FORWARD_PORT": str(forward_port), "LOGWEAVE_INTAKE__OTLP_GRPC_PORT": "0",
               "LOGWEAVE_INTAKE__OTLP_HTTP_PORT": "0", "LOGWEAVE_INTAKE__SYSLOG_PORT": str(syslog_port),
               "LOGWEAVE_INTAKE__SYSLOG_UDP": "false"}
        server = intake(workdir, env).start()
        floors: list[subprocess.Popen[bytes]] = []
        try:
            wait_http_ok(f"http://127.0.0.1:{http_port}/readyz", 60, server)
            http_floor, http_floor_port = start_floor("http", broker.bootstrap, broker.run_prefix)
            forward_floor, forward_floor_port = start_floor("forward", broker.bootstrap, broker.run_prefix)
            floors += [http_floor, forward_floor]
            url, floor_url = f"http://127.0.0.1:{http_port}/v1/logs", f"http://127.0.0.1:{http_floor_port}/v1/logs"
            for target in (url, floor_url):  # warm up: topic metadata, connections
                asyncio.run(http_load(target, 16, args.line_bytes))
            latency_rows = latency_runs(url, floor_url, server.pid, http_floor.pid, args)
            runs = [
                ("intake HTTP, NDJSON 1,000-line requests x8", server.pid,
                 lambda: http_load(url, requests, args.line_bytes), "202 after the Kafka ack"),
                ("bare aiohttp: body -> one record (limit)", http_floor.pid,
                 lambda: http_load(floor_url, requests, args.line_bytes), "no parsing, identity or auth"),
                ("intake forward, PackedForward 1,000 x8", server.pid,
                 lambda: forward_load(forward_port, requests, args.line_bytes), "ack after the Kafka ack"),
                ("bare asyncio: message -> one record (limit)", forward_floor.pid,
                 lambda: forward_load(forward_floor_port, requests, args.line_bytes), "no parsing, identity or auth"),
            ]
            for _ in range(args.rounds):
                for name, pid, load, note in runs:
                    rounds.setdefault(name, []).append(measured(name, pid, lines, load(), note)[0])
            syslog = syslog_rows(workdir, broker.bootstrap, server.pid, http_port, syslog_port, args.syslog_lines,
                                 args.line_bytes, broker.run_prefix) if args.syslog_lines else []
            assert server.alive(), server.log_tail()
        finally:
            for floor in floors:
                floor.kill()
            server.stop()
    rows = [best(found) for found in rounds.values()] + [row for row, _ in latency_rows] + syslog
    http, http_limit, forward, forward_limit = rows[:4]
    spread = {name: [round(r.rate) for r in found] for name, found in rounds.items()}
    print(f"broker: {broker.label}; {lines:,} lines of ~{args.line_bytes} bytes per round, {CLIENTS} clients, "
          f"best of {args.rounds} interleaved rounds (all: {spread})")
    print(table(rows))
    print(f"HTTP {http.rate / http_limit.rate:.2f}x its limit; "
          f"forward {forward.rate / forward_limit.rate:.2f}x its limit" +
          (f"; syslog TCP {syslog[0].rate / syslog[1].rate:.2f}x rsyslog" if syslog else ""))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"broker": broker.label, "lines": lines, "line_bytes": args.line_bytes,
                                              "rounds": spread, "latency_ms": {row.name: quantiles
                                                                               for row, quantiles in latency_rows},
                                              "rows": [r.as_dict() for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
