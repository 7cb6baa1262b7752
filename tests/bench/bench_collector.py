"""File collector benchmark: 1,000,000 CRI lines (~250 bytes) from one file and from 100 files.

Run: `python -m tests.bench.bench_collector --out bench/collector.json` (`--lines` to change N).
The collector runs as its own process (`python -m collectors.files`) pinned to one core; it is timed
from its first published line until Kafka acknowledged the last one (read from its /metrics port).
In the same run, on the same broker (noida-db, printed), the native limit: a confluent-kafka
(librdkafka) producer publishing the same lines one message per line, pinned to the same core; and
the C shipper peer of issue #19: Debian's rsyslog (imfile -> omkafka, tests/bench/rsyslog_peer.py) on
the same files, pinned to the same core, timed from its start until its topic holds every line. The
peer sends each line as it is (no CRI parsing, no stream ids, positions or checkpoints of its own).
With KAFKA_BROKERS set, all three publish to that Kafka instead, on topics of this run's own
(tests/bench/brokers.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from commands.broker import free_port
from tests.bench.bench_pipeline import write_pod_logs
from tests.bench.brokers import bench_broker
from tests.bench.measure import Row, ScrapePacer, cpu_seconds, peak_rss_mib, scrape_metric, table
from tests.bench.rsyslog_peer import start_rsyslog_shipper

CORE = {0}
PUBLISHED = "logweave_file_collector_lines_published_total"


def scrape(port: int) -> float:
    return scrape_metric(port, PUBLISHED)


def run_collector(bootstrap: str, root: Path, lines: int, prefix: str, workdir: Path, name: str = "collector") -> Row:
    """The collector on the files under `root`, publishing to `<prefix>logs.raw`, until Kafka acknowledged
    `lines`; its row is called `name`."""
    port = free_port()
    env = {**os.environ, "LOGWEAVE_KAFKA__BROKERS": bootstrap, "LOGWEAVE_KAFKA__TOPIC_PREFIX": prefix,
           "LOGWEAVE_COLLECTOR__PATHS": orjson.dumps([str(root / "*" / "*" / "*.log")]).decode(),
           "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(workdir / f"{prefix}ckpt"),
           "LOGWEAVE_COLLECTOR__METRICS_PORT": str(port)}
    log = open(workdir / f"{prefix}collector.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "collectors.files"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: os.sched_setaffinity(0, CORE))
    try:
        started = cpu_at_start = 0.0
        pacer = ScrapePacer(lines)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"collector exited: {(workdir / f'{prefix}collector.log').read_text()[-2000:]}")
            done = scrape(port)
            if done >= 0 and not started:  # metrics port up: imports done, reading starts now
                started, cpu_at_start = time.monotonic(), cpu_seconds(proc.pid)
            if done >= lines:
                elapsed = time.monotonic() - started
                cpu = cpu_seconds(proc.pid) - cpu_at_start
                rss = peak_rss_mib(proc.pid)
                break
            time.sleep(pacer.pause(done) if started else 0.05)  # to its endpoint up: the start is not counted
        return Row(name, lines, elapsed, cpu, rss,
                   note=f"one process, one core, chunks to logs.raw, acks=all; {pacer.scrapes + 1} metrics scrapes")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def run_confluent(bootstrap: str, root: Path, lines: int, run_prefix: str = "") -> Row:
    """The same lines, one Kafka message per line, from librdkafka (in a child pinned to the same core)."""
    topic = f"{run_prefix}bench.confluent"
    code = f"""
import os, sys, time, glob, json
os.sched_setaffinity(0, {CORE!r})
from confluent_kafka import Producer
paths = sorted(glob.glob({str(root / '*' / '*' / '*.log')!r}))
p = Producer({{"bootstrap.servers": {bootstrap!r}, "acks": "all", "linger.ms": 5, "enable.idempotence": True,
               "queue.buffering.max.messages": 1000000}})
ts = [0]
def cb(err, msg):
    if err is None: ts[0] += 1
t0 = time.monotonic(); c0 = time.process_time()
for path in paths:
    with open(path, "rb") as f:
        for line in f:
            while True:
                try:
                    p.produce({topic!r}, line[:-1], on_delivery=cb); break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
p.flush()
print(json.dumps({{"acked": ts[0], "seconds": time.monotonic() - t0}}))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    result = json.loads(out)
    return Row("confluent-kafka producer, one message per line", int(result["acked"]), float(result["seconds"]),
               _child_cpu(), _child_rss(), note="librdkafka, acks=all, same broker, same core")


def run_rsyslog(bootstrap: str, root: Path, lines: int, files: int, workdir: Path, run_prefix: str = "") -> Row:
    """rsyslogd (imfile -> omkafka, acks=all) shipping the same files, pinned to the same core (its
    threads inherit the affinity it starts with); timed until the topic's end offsets hold every line."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, partitions = f"{run_prefix}bench.rsyslog{files}", 4
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{run_prefix}bench-rsyslog-{os.getpid()}"})
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, CORE)
    try:
        shipper = start_rsyslog_shipper(workdir / f"rsyslog{files}", str(root / "*" / "*" / "*.log"), bootstrap,
                                        topic)
    finally:
        os.sched_setaffinity(0, own)
    try:
        started = time.monotonic()
        while True:
            if not shipper.alive():
                raise RuntimeError(f"rsyslogd exited: {shipper.log_tail()}")
            stored = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                         for p in range(partitions))
            if stored >= lines:
                elapsed = time.monotonic() - started
                cpu, rss = cpu_seconds(shipper.pid), peak_rss_mib(shipper.pid)
                break
            time.sleep(0.05)
        return Row(f"rsyslog imfile -> omkafka, {files} file{'s' if files > 1 else ''}", lines, elapsed, cpu, rss,
                   note="peer: one message per raw line, acks=all, same core")
    finally:
        shipper.stop()
        consumer.close()


_last_children = [0.0]


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    spent, _last_children[0] = total - _last_children[0], total
    return spent


def _child_rss() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_layouts(bootstrap: str, run_prefix: str, workdir: Path, args: argparse.Namespace) -> list[Row]:
    """The collector, rsyslog and the librdkafka limit on one file, then the collector and rsyslog on 100 files."""
    rows: list[Row] = []
    for files in (1, 100):
        if args.only and int(args.only) != files:
            continue
        root = workdir / f"pods{files}"
        size = write_pod_logs(root, args.lines, files)
        print(f"wrote {args.lines:,} CRI lines, {size / args.lines:.0f} bytes each, in {files} file(s)", flush=True)
        rows.append(run_collector(bootstrap, root, args.lines, f"{run_prefix}f{files}.", workdir,
                                  f"collector, {files} file{'s' if files > 1 else ''}"))
        _child_cpu()  # the collector's CPU is measured from /proc; reset the children baseline
        if not args.no_rsyslog:
            rows.append(run_rsyslog(bootstrap, root, args.lines, files, workdir, run_prefix))
            _child_cpu()
        if files == 1:
            rows.append(run_confluent(bootstrap, root, args.lines, run_prefix))
        shutil.rmtree(root)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/collector.json"))
    parser.add_argument("--only", choices=["1", "100"], help="run one layout only")
    parser.add_argument("--no-rsyslog", action="store_true", help="skip the rsyslog imfile -> omkafka peer")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    rows: list[Row] = []
    try:
        with bench_broker(workdir, "collector") as broker:
            rows.extend(run_layouts(broker.bootstrap, broker.run_prefix, workdir, args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    native = next((r for r in rows if r.name.startswith("confluent")), None)
    print(f"broker: {broker.label}; collector pinned to core {sorted(CORE)}")
    print(table(rows))
    result: dict[str, object] = {"broker": broker.label, "rows": [r.as_dict() for r in rows]}
    if native:
        ratios = {r.name: round(r.rate / native.rate, 2) for r in rows if r is not native}
        result["ratio_to_confluent"] = ratios
        for name, ratio in ratios.items():
            print(f"{name}: {ratio:.2f}x the confluent-kafka one-message-per-line rate")
    peers = {}
    for row in rows:
        peer = next((r for r in rows if r.name.startswith("rsyslog") and r.name.endswith(row.name.split(", ")[-1])),
                    None)
        if row.name.startswith("collector") and peer is not None and peer.rate:
            peers[row.name] = {"lines_per_s": round(row.rate / peer.rate, 2),
                               "cpu_per_100k": round(row.cpu_per_100k / peer.cpu_per_100k, 2) if peer.cpu else None}
            print(f"{row.name}: {row.rate / peer.rate:.2f}x rsyslog's lines/s at "
                  f"{row.cpu_per_100k:.3f} vs {peer.cpu_per_100k:.3f} CPU s/100K, {row.rss_mib:.0f} vs "
                  f"{peer.rss_mib:.0f} MiB")
    if peers:
        result["ratio_to_rsyslog"] = peers
    result["targets"] = {"lines_per_s": 150_000, "peak_rss_mib": 80}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
