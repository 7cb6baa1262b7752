"""The file collector on the shape of a real node: many pod logs, each written slowly and live.

Run: `python -m tests.bench.live_files [--files 200] [--rate 20] [--seconds 30] [--profile out.txt]`.
A writer process appends one ~250-byte JSON CRI line to each file every 1/rate s while the collector
(`python -m collectors.files`, its own process) follows them into an embedded broker. Printed: the
`logs.raw` records per second and lines per record (what the worker pays for: its cost is per
record), the collector's CPU seconds per 100K lines (/proc/<pid>/stat) and its RSS. `--profile`
samples the collector with py-spy meanwhile and prints its top functions (self and total time).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker, free_port
from core.models import decode_raw_chunks
from tests.bench.measure import cpu_seconds, peak_rss_mib
from tests.support.kafka import read_topic

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = "logweave_file_collector_lines_published_total"
WRITER = """
import os, sys, time
paths, rate, seconds = sys.argv[1].split(","), float(sys.argv[2]), float(sys.argv[3])
fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in paths]
pad = "x" * 120
n, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    tick = start + n / rate
    time.sleep(max(0.0, tick - time.monotonic()))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    for i, fd in enumerate(fds):
        os.write(fd, ('%s.000000000Z stdout F {"time":"%sZ","level":"info","traceId":"%032x","pod":%d,'
                      '"n":%d,"msg":"%s"}\\n' % (stamp, stamp, i * 1000003 + n, i, n, pad)).encode())
    n += 1
print(n * len(fds))
"""


def scrape(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            for row in response.read().decode().splitlines():
                if row.startswith(PUBLISHED + " "):
                    return float(row.split()[1])
    except OSError:
        return -1.0
    return 0.0


def current_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def top_functions(raw_profile: Path, count: int = 12) -> list[str]:
    """Top frames of py-spy's collapsed stacks: self samples and total (inclusive) samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for row in raw_profile.read_text().splitlines():
        stack, _, n = row.rpartition(" ")
        frames = stack.split(";")
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            total[frame] += int(n)
    out = [f"{samples} samples; self:"]
    out += [f"  {100 * n / samples:5.1f}% {frame}" for frame, n in own.most_common(count)]
    out.append("total:")
    out += [f"  {100 * n / samples:5.1f}% {frame}" for frame, n in total.most_common(count + 8)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="lines per second per file")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of the collector go here")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose collector runs")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="live-files-"))
    broker = EmbeddedBroker(workdir / "broker", free_port()).start()
    paths = []
    for i in range(args.files):
        directory = workdir / "pods" / f"live_pod-{i:03d}_{i:032x}" / "app"
        directory.mkdir(parents=True)
        path = directory / "0.log"
        path.write_bytes(b'2026-12-02T10:00:00.000000000Z stdout F {"time":"2026-12-02T10:00:00Z","first":true}\n')
        paths.append(str(path))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(args.code), "LOGWEAVE_KAFKA__BROKERS": broker.bootstrap,
           "LOGWEAVE_COLLECTOR__PATHS": orjson.dumps([str(workdir / "pods" / "*" / "*" / "*.log")]).decode(),
           "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(workdir / "ckpt"),
           "LOGWEAVE_COLLECTOR__METRICS_PORT": str(port)}
    log = open(workdir / "collector.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "collectors.files"], env=env, cwd=args.code, stdout=log,
                            stderr=subprocess.STDOUT)
    spy = None
    try:
        deadline = time.monotonic() + 60
        while scrape(port) < args.files:  # the first lines of every file published: following them all
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"collector not ready: {(workdir / 'collector.log').read_text()[-2000:]}")
            time.sleep(0.1)
        base_lines = scrape(port)
        base_records = len(asyncio.run(read_topic(broker.bootstrap, "logs.raw", timeout=30)))
        if args.profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
                                    "--format", "raw", "--rate", "200", "--nonblocking",
                                    "--duration", str(int(args.seconds)), "-o", str(args.profile)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        written = int(subprocess.run([sys.executable, "-c", WRITER, ",".join(paths), str(args.rate),
                                      str(args.seconds)], capture_output=True, text=True, check=True).stdout)
        writing = time.monotonic() - t0
        rss_live = current_rss_mib(proc.pid)
        deadline = time.monotonic() + 120
        while scrape(port) < base_lines + written and time.monotonic() < deadline:
            time.sleep(0.05)
        behind = time.monotonic() - t0 - writing
        cpu = cpu_seconds(proc.pid) - cpu0
        published = scrape(port) - base_lines
        records = asyncio.run(read_topic(broker.bootstrap, "logs.raw", timeout=60))[base_records:]
        lines = sum(len(c.lines) for _, _, _, value in records for c in decode_raw_chunks(value))
        segments = sum(len(decode_raw_chunks(value)) for _, _, _, value in records)
        result = {"files": args.files, "written": written, "published": int(published),
                  "writing_s": round(writing, 1), "caught_up_after_s": round(behind, 2),
                  "records": len(records), "records_per_s": round(len(records) / writing, 1),
                  "lines_per_record": round(lines / max(1, len(records)), 1),
                  "streams_per_record": round(segments / max(1, len(records)), 1),
                  "cpu_s": round(cpu, 2), "cpu_s_per_100k_lines": round(cpu / max(1, published) * 100_000, 3),
                  "rss_mib": round(rss_live, 1), "peak_rss_mib": round(peak_rss_mib(proc.pid), 1)}
        print(json.dumps(result, indent=1))
        if spy is not None:
            spy.wait(60)
            print("\n".join(top_functions(args.profile)))
        return 0
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        proc.terminate()
        proc.wait(30)
        log.close()
        broker.stop(kill=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
