"""Benchmark: the pod collector streaming 200 pods at once from the Kubernetes API test server.

Three processes, each measured on its own: the noida-db broker, the test server
(`python -m tests.support.kube_api`, prefilled logs, its CPU reported separately) and the collector
(`python -m collectors.pods`, CPU and peak RSS). The rate is lines acknowledged by Kafka per second,
read from the collector's metrics endpoint, from its start to the last line. Beside it, the same
server read by a bare aiohttp loop (no parsing, no Kafka): the read-side limit of this machine.

    python tests/bench/bench_pod_collector.py --pods 200 --lines 2500 --out var/bench/pods.json

With KAFKA_BROKERS set, the collector and the limit publish to that Kafka instead, on topics of this
run's own (tests/bench/brokers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from commands.broker import free_port  # noqa: E402
from tests.bench.brokers import bench_broker, logweave_env  # noqa: E402
from tests.bench.measure import Row, ScrapePacer, cpu_seconds, peak_rss_mib, table, tree_pids  # noqa: E402
from tests.support.processes import ManagedProcess, base_env  # noqa: E402


def start_server(workdir: Path, args: argparse.Namespace) -> tuple[ManagedProcess, Path, int]:
    kubeconfig = workdir / "kubeconfig"
    argv = [sys.executable, "-m", "tests.support.kube_api", "--pods", str(args.pods), "--lines", str(args.lines),
            "--line-bytes", str(args.line_bytes), "--max-piece", str(args.max_piece), "--kubeconfig", str(kubeconfig)]
    proc = ManagedProcess("kube-api", argv, base_env({}), workdir / "kube-api.log", ROOT).start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = proc.log_path.read_text() if proc.log_path.exists() else ""
        if "ready " in text:
            total = int(text.split("lines=")[1].split()[0])
            return proc, kubeconfig, total
        if not proc.alive():
            raise RuntimeError(proc.log_tail())
        time.sleep(0.2)
    raise TimeoutError("test server did not get ready")


def scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {n: float(v) for n, v in (line.rsplit(" ", 1) for line in text.splitlines()
                                    if line.startswith("logweave_pod_collector"))}


def run_collector(workdir: Path, bootstrap: str, kubeconfig: Path, total: int, args: argparse.Namespace,
                  server: ManagedProcess, run_prefix: str = "") -> Row:
    port = free_port()
    env = base_env({**logweave_env(bootstrap, run_prefix), "LOGWEAVE_KAFKA__PARTITIONS": "4",
                    "LOGWEAVE_PODS__KUBECONFIG": str(kubeconfig), "LOGWEAVE_PODS__METRICS_PORT": str(port),
                    "NAMESPACE": "demo-system", "SELECTOR": "app=snowplow",
                    **dict(item.split("=", 1) for item in args.env)})
    proc = ManagedProcess("pod-collector", [sys.executable, "-m", "collectors.pods"], env,
                          workdir / "pod-collector.log", ROOT).start()
    server_cpu0 = sum(cpu_seconds(p) for p in tree_pids(server.pid))
    started = time.monotonic()
    peak_open = 0.0
    pacer = ScrapePacer(total)
    serving_cpu: float | None = None  # the collector's CPU when its metrics endpoint first answered
    try:
        while True:
            if not proc.alive():
                raise RuntimeError(proc.log_tail())
            figures = scrape(port)
            if figures and serving_cpu is None:  # imports done, settings read: the rest is connecting and reading
                serving_cpu = cpu_seconds(proc.pid)
            peak_open = max(peak_open, figures.get("logweave_pod_collector_streams_open", 0.0))
            published = figures.get("logweave_pod_collector_lines_published_total", 0)
            if published >= total:
                break
            if time.monotonic() - started > args.timeout:
                raise TimeoutError(f"only {figures} after {args.timeout}s")
            time.sleep(pacer.pause(published))
        seconds = time.monotonic() - started
        cpu, rss = cpu_seconds(proc.pid), peak_rss_mib(proc.pid)
        server_cpu = sum(cpu_seconds(p) for p in tree_pids(server.pid)) - server_cpu0
    finally:
        proc.stop()
        if args.keep_log:
            Path(args.keep_log).write_text(proc.log_path.read_text())
    after_start = (cpu - (serving_cpu or 0.0)) / total * 100_000
    collector = Row("pod collector -> Kafka (acks=all)", total, seconds, cpu, rss,
                    f"{int(peak_open)} streams open at peak, startup and {pacer.scrapes + 1} metrics scrapes included "
                    f"({after_start:.3f} from its metrics endpoint up, as the file collector's row counts)")
    collector.server_cpu = server_cpu  # type: ignore[attr-defined]
    return collector


async def bare_read(kubeconfig: Path, pods: int) -> tuple[int, float]:
    """Lines per second a bare aiohttp client reads from the same server (200 concurrent GETs)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    url, token = doc["clusters"][0]["cluster"]["server"], doc["users"][0]["user"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pods + 10)) as session:
        async def one(i: int) -> int:
            async with session.get(f"{url}/api/v1/namespaces/demo-system/pods/bench-{i}/log",
                                   params={"container": "c0", "timestamps": "true"}, headers=headers) as resp:
                return (await resp.read()).count(b"\n")
        started = time.monotonic()
        counts = await asyncio.gather(*(one(i) for i in range(pods)))
        return sum(counts), time.monotonic() - started


async def raw_produce(bootstrap: str, total: int, line_bytes: int, run_prefix: str = "") -> Row:
    """The Kafka-side limit: a bare aiokafka loop sending the same lines as 1,000-line raw chunks."""
    from aiokafka import AIOKafkaProducer

    from core.models import RawChunk, make_raw_line

    line = b"x" * line_bytes
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    try:
        sends = []
        for start in range(0, total, 1000):
            lines = [make_raw_line(start + i, line, "", 0) for i in range(min(1000, total - start))]
            chunk = RawChunk({"kind": "bench"}, f"bench:{start % 200}", 0, lines)
            sends.append(await producer.send(f"{run_prefix}bench.raw", chunk.encode(), key=chunk.stream_id.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime
    return Row("bare aiokafka chunks, same lines (limit)", total, time.monotonic() - started, cpu, 0.0,
               "no HTTP, no parsing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--lines", type=int, default=2500, help="lines per pod")
    parser.add_argument("--line-bytes", type=int, default=250)
    parser.add_argument("--max-piece", type=int, default=0, help="server splits writes into pieces up to N bytes")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default="")
    parser.add_argument("--keep-log", default="", help="copy the collector's log here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the collector, e.g. LOGWEAVE_PODS__READ_BUFSIZE=32768 (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as tmp, bench_broker(Path(tmp), "pods") as broker:
        workdir = Path(tmp)
        server, kubeconfig, total = start_server(workdir, args)
        try:
            cpu0 = sum(cpu_seconds(p) for p in tree_pids(server.pid))
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            bare_lines, bare_seconds = asyncio.run(bare_read(kubeconfig, args.pods))
            usage = resource.getrusage(resource.RUSAGE_SELF)
            bare_server_cpu = sum(cpu_seconds(p) for p in tree_pids(server.pid)) - cpu0
            bare_cpu = usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime
            bare = Row("bare aiohttp read of the same logs (limit)", bare_lines, bare_seconds, bare_cpu, 0.0,
                       "no parsing, no Kafka; reader CPU")
            row = run_collector(workdir, broker.bootstrap, kubeconfig, total, args, server, broker.run_prefix)
            server_row = Row("test server (separate process), same run", total, row.seconds,
                             row.server_cpu, peak_rss_mib(server.pid), "CPU of the server only")  # type: ignore[attr-defined]
            limit = asyncio.run(raw_produce(broker.bootstrap, total, args.line_bytes,  # after: broker stays light
                                            broker.run_prefix))
        finally:
            server.stop(kill=True)
    rows = [row, server_row, bare, limit]
    print(f"broker: {broker.label}; {args.pods} pods x {args.lines} lines of ~{args.line_bytes} bytes; "
          f"bare read server CPU {bare_server_cpu:.2f}s")
    print(table(rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"broker": broker.label, "pods": args.pods, "lines_per_pod": args.lines,
                                              "line_bytes": args.line_bytes, "rows": [r.as_dict() for r in rows]},
                                             indent=2))


if __name__ == "__main__":
    main()
