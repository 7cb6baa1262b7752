"""Live benchmark: many pods each writing a few lines per second, the shape a node really has.

Run: `python -m tests.bench.bench_live --rows 200x20,200x50,1000x2,50x0.5 --peer 200x20 --out bench/live.json`
(`--seconds` measured after `--warmup`; KAFKA_BROKERS runs it against an external Kafka).

Per row, real processes only: writer processes (tests/bench/live_writer.py) write PODS CRI files in
kubelet's layout at RATE lines/s each, every file on its own schedule, one write per line, a few files
rotated during the window like kubelet; the file collector (`logweave collect files`) -> the broker ->
one worker (`faust -A app worker`) -> the file sink. A thread tails the sink's output directory and
stamps each line's arrival beside the write time the line carries. Over the measured window:
offered and delivered lines/s, whether it kept up (consumer lag on logs.raw / logs.parsed / the sink
topic at the end of the window and after a drain, every window line arrived), p50/p99 of write -> in
the sink file, CPU s per 100K lines of worker, collector and broker (/proc), peak RSS of collector
and worker, each beside its target. The peer row runs rsyslog imfile -> omkafka on the same files
at the same rates, measured to its Kafka topic (it has no worker and no sink). The quiet row (50 pods
x 0.5 lines/s) is there for latency on a quiet node, where a line waits on timers and rescans rather
than on work: the first lines after a rename rotation waited 5-9 s there and nowhere else (fixed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from commands.broker import free_port
from core.settings import KafkaSettings, PodCollectorSettings, load_settings
from core.topics import PARSED, RAW, sink_topic
from kafka_io.topic_admin import ensure_topics, prepare_worker_topics
from tests.bench import live_pods, live_stats
from tests.bench.brokers import BenchBroker, bench_broker, logweave_env
from tests.bench.live_floor import floor_at
from tests.bench.live_tails import KafkaTopicTail, SinkDirectoryTail
from tests.bench.live_writer import pod_dir
from tests.bench.measure import cpu_seconds, peak_rss_mib, runqueue_wait_seconds, scrape_metric
from tests.bench.rsyslog_peer import start_rsyslog_shipper
from tests.support.processes import ManagedProcess, base_env, file_collector, pod_collector, wait_http_ok, worker
from tests.support.quiescence import group_behind

PUBLISHED = "logweave_file_collector_lines_published_total"
POD_PUBLISHED = "logweave_pod_collector_lines_published_total"
RAW_RECORDS_TAKEN = 'logweave_chunks_total{stage="parse"}'  # the worker's logs.raw records and their lines
RAW_LINES_TAKEN = 'logweave_lines_total{stage="parse_in"}'
ROOT = Path(__file__).resolve().parents[2]
PEER_PARTITIONS = 4


def shape(text: str) -> tuple[int, float]:
    pods, _, rate = text.partition("x")
    return int(pods), float(rate)


def setting(text: str) -> tuple[str, str]:
    """`--set LOGWEAVE_X=VALUE`: one environment setting for the shipper's processes."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("LOGWEAVE_"):
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected LOGWEAVE_<GROUP>__<NAME>=VALUE")
    return name, value


def make_pods(root: Path, pods: int) -> str:
    """Empty 0.log files in kubelet's layout, present before any shipper starts; their glob."""
    for i in range(pods):
        directory = pod_dir(root, i)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "0.log").touch()
    return str(root / "*" / "*" / "*.log")


class Clock:
    """The run's timeline in epoch seconds: writers start, the window opens, the window closes."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.start = time.time() + 1.5  # writer processes are up by then
        self.window_start = self.start + warmup
        self.window_end = self.window_start + seconds

    def wait_until(self, moment: float, alive: Callable[[], str]) -> None:
        while time.time() < moment:
            problem = alive()
            if problem:
                raise RuntimeError(problem)
            time.sleep(min(0.2, max(0.0, moment - time.time())))


def start_writers(root: Path, pods: int, rate: float, writers: int, rotate: int,
                  clock: Clock) -> Callable[[], dict[str, float]]:
    """The file rows' writer processes, started; what they wrote (`writer_totals`), once they are done."""
    rotated = ",".join(str(i * pods // rotate) for i in range(rotate)) if rotate else ""
    procs = []
    for w in range(writers):
        first, last = w * pods // writers, (w + 1) * pods // writers
        argv = [sys.executable, "-m", "tests.bench.live_writer", "--root", str(root), "--first", str(first),
                "--count", str(last - first), "--rate", str(rate), "--start", repr(clock.start),
                "--window-start", repr(clock.window_start), "--window-end", repr(clock.window_end),
                "--rotate", rotated]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    return lambda: writer_totals(procs)


def writer_totals(procs: list[subprocess.Popen[str]]) -> dict[str, float]:
    totals = {"written": 0.0, "in_window": 0.0, "cpu_s": 0.0}
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"a writer failed with status {proc.returncode}")
        for key, value in json.loads(out.strip().splitlines()[-1]).items():
            totals[key] += value
    return totals


def wait_drained(arrivals: live_stats.Arrivals, clock: Clock, expected: int, drain: float) -> None:
    """Until every window line arrived, or `drain` seconds after the window (a run that fell behind)."""
    start_ns, end_ns = int(clock.window_start * 1e9), int(clock.window_end * 1e9)
    deadline = time.time() + drain
    while time.time() < deadline:
        if arrivals.written_between(start_ns, end_ns) >= expected:
            return
        time.sleep(0.5)


def lags(broker: BenchBroker, group: str, topics: dict[str, str]) -> dict[str, int]:
    """Records not yet committed by `group`, per topic (short names: logs.raw, logs.parsed, sink.file)."""
    per_topic = live_stats.lag_by_topic(asyncio.run(group_behind(broker.bootstrap, group, list(topics.values()))))
    return {short: per_topic.get(full, 0) for short, full in topics.items()}


def delivery(arrivals: live_stats.Arrivals, clock: Clock, in_window: int, seconds: float) -> dict[str, Any]:
    start_ns, end_ns = int(clock.window_start * 1e9), int(clock.window_end * 1e9)
    delays = arrivals.delays_of_written_between(start_ns, end_ns)
    waited = time.time() - clock.window_end
    summary = live_stats.latency_summary(delays, max(0, in_window - len(delays)), waited)
    arrived_in_window = arrivals.arrived_between(start_ns, end_ns)
    offered, delivered = in_window / seconds, arrived_in_window / seconds
    return {**summary, "offered_lines_per_s": round(offered), "delivered_lines_per_s": round(delivered),
            "window_lines": in_window, "window_lines_arrived": len(delays), "arrivals_in_window": arrived_in_window,
            "kept_up": live_stats.kept_up(offered, delivered, summary["missing"]),
            "unstamped_lines": arrivals.unstamped}


def per_100k(cpu: float | None, lines: float) -> float | None:
    return None if cpu is None or lines <= 0 else round(cpu / lines * 100_000, 3)


def start_live_pods(run_dir: Path, pods: int, rate: float, clock: Clock,
                    tls: bool = False) -> tuple[ManagedProcess, Path]:
    """The Kubernetes API rows' writer: the API test server with `pods` live pods (tests/bench/live_pods.py),
    serving (over TLS with `tls`); its process and kubeconfig."""
    kubeconfig = run_dir / "kubeconfig"
    argv = [sys.executable, "-m", "tests.bench.live_pods", "--pods", str(pods), "--rate", str(rate),
            "--start", repr(clock.start), "--window-start", repr(clock.window_start),
            "--window-end", repr(clock.window_end), "--kubeconfig", str(kubeconfig), *(["--tls"] if tls else [])]
    server = ManagedProcess("kube-api", argv, base_env({}), run_dir / "kube-api.log", ROOT).start()
    deadline = time.monotonic() + 60
    while "ready " not in (server.log_path.read_text() if server.log_path.exists() else ""):
        if not server.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the Kubernetes API test server did not start:\n{server.log_tail()}")
        time.sleep(0.1)
    return server, kubeconfig


def live_pods_totals(server: ManagedProcess) -> dict[str, float]:
    """What the API test server wrote: the JSON line it prints when writing stops at the window's end."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in reversed(server.log_path.read_text().splitlines()):
            if line.startswith("{"):
                return {key: float(value) for key, value in json.loads(line).items()}
        if not server.alive():
            raise RuntimeError(f"the Kubernetes API test server exited:\n{server.log_tail()}")
        time.sleep(0.2)
    raise TimeoutError("the Kubernetes API test server printed no totals")


def run_logweave(workdir: Path, pods: int, rate: float, args: argparse.Namespace,
                 source: str = "files") -> dict[str, Any]:
    """One row through the whole pipeline: pod log files and the file collector (`source` "files"), or
    pods behind the Kubernetes API and the pod collector ("pods"; "pods-tls": that API over TLS)."""
    name = f"{pods}x{rate:g}" if source == "files" else f"{pods}x{rate:g}-{source}"
    run_dir = workdir / name
    run_dir.mkdir(parents=True)
    with bench_broker(run_dir, name.replace(".", "_")) as broker:
        metrics_port = free_port()
        env = {**logweave_env(broker.bootstrap, broker.run_prefix),
               "LOGWEAVE_WORKER__DATA_DIR": str(run_dir / "worker"), "LOGWEAVE_SINKS__ENABLED": "file",
               "LOGWEAVE_SINKS__FILE__DIRECTORY": str(run_dir / "out"),
               "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(run_dir / "checkpoints"),
               "LOGWEAVE_COLLECTOR__METRICS_PORT": str(metrics_port)}
        env.update(args.set)  # a tuning study's settings, e.g. LOGWEAVE_PARSE__LINGER=0.2
        settings = load_settings(environ=env)
        asyncio.run(prepare_worker_topics(settings))
        topics = {"logs.raw": settings.topic(RAW), "logs.parsed": settings.topic(PARSED),
                  "sink.file": settings.topic(sink_topic("file"))}
        web_port = free_port()
        with ExitStack() as cleanup:  # each stop runs even when an earlier one raises
            worker_proc = worker(run_dir, env, web_port).start()
            cleanup.callback(worker_proc.stop)
            tail = SinkDirectoryTail(run_dir / "out")
            wait_http_ok(f"http://127.0.0.1:{web_port}/readyz", 120, worker_proc)
            if source != "files":
                clock = Clock(args.warmup, args.seconds)
                server, kubeconfig = start_live_pods(run_dir, pods, rate, clock, tls=source == "pods-tls")
                cleanup.callback(server.stop)
                # an operator following more pods than `pods.max_streams` (500) raises it to their number
                streams = str(max(pods, PodCollectorSettings().max_streams))
                collector = pod_collector(run_dir, {**env, "LOGWEAVE_PODS__KUBECONFIG": str(kubeconfig),
                                                    "LOGWEAVE_PODS__METRICS_PORT": str(metrics_port),
                                                    "LOGWEAVE_PODS__MAX_STREAMS": streams,
                                                    "NAMESPACE": live_pods.NAMESPACE, "SELECTOR": live_pods.SELECTOR})
                published_metric = POD_PUBLISHED
            else:
                collector = file_collector(run_dir, env, [make_pods(run_dir / "pods", pods)])
                published_metric = PUBLISHED
            cleanup.callback(collector.stop)
            collector.start()
            while scrape_metric(metrics_port, published_metric) < 0:
                if not collector.alive():
                    raise RuntimeError(f"collector exited:\n{collector.log_tail()}")
                time.sleep(0.1)
            tail.start()
            cleanup.callback(tail.stop)
            if source != "files":
                written: Callable[[], dict[str, float]] = lambda: live_pods_totals(server)  # noqa: E731
            else:
                clock = Clock(args.warmup, args.seconds)
                written = start_writers(run_dir / "pods", pods, rate, args.writers, args.rotate, clock)
            row = measure_run(broker, [worker_proc, collector], tail, run_dir, pods, rate, args, clock, written,
                              lambda: scrape_metric(metrics_port, published_metric),
                              lambda: lags(broker, settings.worker.app_id, topics),
                              lambda: (scrape_metric(web_port, RAW_RECORDS_TAKEN),
                                       scrape_metric(web_port, RAW_LINES_TAKEN)))
            if source != "files":
                over = " over TLS" if source == "pods-tls" else ""
                row.update({"name": f"{pods} pods x {rate:g} lines/s, Kubernetes API{over}", "source": source,
                            "rotated_files": 0})
            return row


def measure_run(broker: BenchBroker, procs: list[ManagedProcess], tail: SinkDirectoryTail | KafkaTopicTail,
                run_dir: Path, pods: int, rate: float, args: argparse.Namespace, clock: Clock,
                written_totals: Callable[[], dict[str, float]],
                published: Callable[[], float] | None, lag: Callable[[], dict[str, int]] | None,
                taken: Callable[[], tuple[float, float]] | None = None) -> dict[str, Any]:
    """Warm-up, the measured window (CPU and lag at both ends), drain; the row's figures. The writers
    write on `clock` (started by the caller; `written_totals` tells what they wrote once done).
    `procs` are the shipper's processes: [worker, collector] or [rsyslogd]; `taken` tells the records and
    lines the worker has taken from logs.raw (the shape its faust floor is fed at: tests/bench/live_floor.py)."""
    load_before = os.getloadavg()[0]

    def alive() -> str:
        dead = [p for p in procs if not p.alive()]
        return f"{dead[0].name} exited:\n{dead[0].log_tail()}" if dead else ""

    clock.wait_until(clock.window_start, alive)
    cpu0, wait0 = [cpu_seconds(p.pid) for p in procs], [runqueue_wait_seconds(p.pid) for p in procs]
    broker0, published0 = broker.cpu_seconds(), published() if published else 0.0
    lag_start = lag() if lag else {}
    taken0 = taken() if taken else (0.0, 0.0)
    clock.wait_until(clock.window_end, alive)
    taken1 = taken() if taken else (0.0, 0.0)
    cpu1, wait1 = [cpu_seconds(p.pid) for p in procs], [runqueue_wait_seconds(p.pid) for p in procs]
    broker1, published1 = broker.cpu_seconds(), published() if published else 0.0
    lag_end = lag() if lag else {}
    load_end = os.getloadavg()[0]
    written = written_totals()
    wait_drained(tail.arrivals, clock, int(written["in_window"]), args.drain)
    row = delivery(tail.arrivals, clock, int(written["in_window"]), args.seconds)
    delivered_lines = row["arrivals_in_window"]
    broker_cpu = None if broker0 is None or broker1 is None else broker1 - broker0
    row.update({"pods": pods, "lines_per_s_per_pod": rate, "seconds": args.seconds, "warmup_s": args.warmup,
                "rotated_files": args.rotate, "broker": broker.label,
                "broker_cpu_s": None if broker_cpu is None else round(broker_cpu, 2),
                "broker_cpu_per_100k": per_100k(broker_cpu, delivered_lines),
                "runqueue_wait_s": {p.name: round(w1 - w0, 2) for p, w0, w1 in zip(procs, wait0, wait1, strict=True)},
                "writers_cpu_s": round(written["cpu_s"], 2), "load_avg_1m": [round(load_before, 2), round(load_end, 2)],
                "lag_window_start": lag_start, "lag_window_end": lag_end, "lag_after_drain": lag() if lag else {}})
    if len(procs) == 2:
        worker_cpu, collector_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        records, lines_taken = taken1[0] - taken0[0], taken1[1] - taken0[1]
        row.update({"name": f"{pods} pods x {rate:g} lines/s", "kind": "logweave",
                    "raw_records_per_s": round(records / args.seconds, 2),
                    "lines_per_raw_record": round(lines_taken / records) if records > 0 else None,
                    "collector_lines_per_s": round((published1 - published0) / args.seconds),
                    "worker_cpu_s": round(worker_cpu, 2), "collector_cpu_s": round(collector_cpu, 2),
                    "worker_cpu_per_100k": per_100k(worker_cpu, delivered_lines),
                    "collector_cpu_per_100k": per_100k(collector_cpu, published1 - published0),
                    "worker_peak_rss_mib": round(peak_rss_mib(procs[0].pid), 1),
                    "collector_peak_rss_mib": round(peak_rss_mib(procs[1].pid), 1),
                    "broker_note": live_stats.broker_dominates(broker_cpu, {"worker": worker_cpu,
                                                                            "collector": collector_cpu})})
    else:
        shipper_cpu = cpu1[0] - cpu0[0]
        row.update({"name": f"peer: rsyslog imfile -> omkafka, {pods} pods x {rate:g} lines/s", "kind": "peer",
                    "shipper_cpu_s": round(shipper_cpu, 2),
                    "shipper_cpu_per_100k": per_100k(shipper_cpu, delivered_lines),
                    "shipper_peak_rss_mib": round(peak_rss_mib(procs[0].pid), 1),
                    "broker_note": live_stats.broker_dominates(broker_cpu, {"rsyslogd": shipper_cpu})})
    return row


def with_floor(row: dict[str, Any], workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The row with its faust floor: faust alone fed the records the row's worker took, at their rate and
    size, on a fresh broker (tests/bench/live_floor.py); the quiet row's few records are not judged."""
    records, lines = row.get("raw_records_per_s"), row.get("lines_per_raw_record")
    if args.floor and records and lines and live_stats.cpu_judged(row):
        name = f"floor-{row['pods']}x{row['lines_per_s_per_pod']:g}-{row.get('source', 'files')}"
        row["faust_floor"] = floor_at(workdir / name, records, lines, args.seconds)
    return row


def run_peer(workdir: Path, pods: int, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    name = f"peer-{pods}x{rate:g}"
    run_dir = workdir / name
    run_dir.mkdir(parents=True)
    with bench_broker(run_dir, name.replace(".", "_").replace("-", "")) as broker:
        topic = f"{broker.run_prefix}peer.lines"
        asyncio.run(ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=PEER_PARTITIONS), [topic]))
        file_glob = make_pods(run_dir / "pods", pods)
        with ExitStack() as cleanup:
            shipper = start_rsyslog_shipper(run_dir / "rsyslog", file_glob, broker.bootstrap, topic)
            cleanup.callback(shipper.stop)
            proc = ManagedProcess("rsyslogd", [], {}, shipper.log, run_dir, shipper.process)  # alive/pid/log_tail
            tail = KafkaTopicTail(broker.bootstrap, topic, PEER_PARTITIONS)
            tail.start()
            cleanup.callback(tail.stop)
            clock = Clock(args.warmup, args.seconds)
            written = start_writers(run_dir / "pods", pods, rate, args.writers, args.rotate, clock)
            return measure_run(broker, [proc], tail, run_dir, pods, rate, args, clock, written, None, None)


def _or_external(figure: float | None, unit: str = "") -> str:
    return "not measured (external broker)" if figure is None else f"{figure}{unit}"


def describe(row: dict[str, Any]) -> str:
    def lag(figures: dict[str, int]) -> str:
        return ", ".join(f"{topic} {records:,}" for topic, records in figures.items()) or "-"

    where = "the sink file" if row["kind"] == "logweave" else "its Kafka topic"
    p99 = "-" if row["p99_s"] is None else f"{'>= ' if row['p99_lower_bound'] else ''}{row['p99_s'] * 1000:,.0f} ms"
    p50 = "-" if row["p50_s"] is None else f"{'>= ' if row['p50_lower_bound'] else ''}{row['p50_s'] * 1000:,.0f} ms"
    lines = [f"== {row['name']} ({row['seconds']:g} s after {row['warmup_s']:g} s warm-up; broker: {row['broker']})",
             f"offered {row['offered_lines_per_s']:,} lines/s, delivered to {where} {row['delivered_lines_per_s']:,} "
             f"lines/s; {row['window_lines_arrived']:,} of {row['window_lines']:,} window lines arrived "
             f"({row['missing']:,} missing); kept up: {'yes' if row['kept_up'] else 'NO'}",
             f"write -> {where}: p50 {p50}, p99 {p99}"]
    if row["kind"] == "logweave":
        lines += [f"lag (records not committed by the worker): window start {lag(row['lag_window_start'])}; "
                  f"window end {lag(row['lag_window_end'])}; after drain {lag(row['lag_after_drain'])}",
                  f"collector published {row['collector_lines_per_s']:,} lines/s; CPU s / 100K lines: worker "
                  f"{row['worker_cpu_per_100k']}, collector {row['collector_cpu_per_100k']}, broker "
                  f"{_or_external(row['broker_cpu_per_100k'])}; peak RSS: collector "
                  f"{row['collector_peak_rss_mib']:.0f} MiB, "
                  f"worker {row['worker_peak_rss_mib']:.0f} MiB",
                  f"CPU in the window: worker {row['worker_cpu_s']} s ({row['worker_cpu_s'] / row['seconds']:.0%} of a "
                  f"core), collector {row['collector_cpu_s']} s ({row['collector_cpu_s'] / row['seconds']:.0%}), "
                  f"broker {_or_external(row['broker_cpu_s'], ' s')}"]
    else:
        lines.append(f"rsyslogd CPU s / 100K lines {row['shipper_cpu_per_100k']}, peak RSS "
                     f"{row['shipper_peak_rss_mib']:.0f} MiB; broker CPU s / 100K "
                     f"{_or_external(row['broker_cpu_per_100k'])}")
    waits = ", ".join(f"{name} {seconds} s" for name, seconds in row["runqueue_wait_s"].items())
    lines.append(f"time runnable but waiting for a CPU in the window (a busy machine): {waits}")
    lines.append(f"writers' CPU {row['writers_cpu_s']} s; 1-min load average before/after the window "
                 f"{row['load_avg_1m'][0]} / {row['load_avg_1m'][1]} on {os.cpu_count()} cores "
                 "(the machine may be shared with other work)")
    if row.get("broker_note"):
        lines.append(row["broker_note"])
    if row["kind"] == "logweave":
        floor = row.get("faust_floor")
        if floor:
            lines.append(f"the worker took {row['raw_records_per_s']} logs.raw records/s of "
                         f"{row['lines_per_raw_record']} lines; the faust floor fed those (its two hops, no work, "
                         f"fresh broker): {floor['cpu_per_100k']} CPU s / 100K lines"
                         + ("" if floor["forwarded_all"] else " (it did NOT forward every line)")
                         + f", the worker {row['worker_cpu_per_100k']}")
        lines += ["  " + verdict for verdict in live_stats.verdicts(row)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=lambda t: [shape(s) for s in t.split(",") if s],
                        default="200x20,200x50,1000x2,50x0.5",
                        help="PODSxRATE shapes through the pipeline, e.g. 200x20 (rate: lines/s per pod)")
    parser.add_argument("--pod-rows", type=lambda t: [shape(s) for s in t.split(",") if s], default="",
                        help="PODSxRATE shapes read by the pod collector from the Kubernetes API test server")
    parser.add_argument("--pod-tls-rows", type=lambda t: [shape(s) for s in t.split(",") if s], default="",
                        help="the same, with the API test server serving HTTPS as real API servers do (no "
                             "faust floor: the worker's records are those of the rows over HTTP)")
    parser.add_argument("--peer", type=lambda t: [shape(s) for s in t.split(",") if s], default="200x20",
                        help="shapes for the rsyslog imfile -> omkafka peer ('' for none)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=15.0, help="writing before the window opens")
    parser.add_argument("--drain", type=float, default=30.0, help="wait at most this long for the window's lines")
    parser.add_argument("--writers", type=int, default=2, help="writer processes sharing the pods")
    parser.add_argument("--rotate", type=int, default=4, help="files rotated (renamed, recreated) in the window")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="LOGWEAVE_X=VALUE",
                        help="a setting for the worker and the collector (repeatable), e.g. to compare lingers")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the faust floor fed at each row's records/s (tests/bench/live_floor.py)")
    parser.add_argument("--out", type=Path, default=Path("bench/live.json"))
    parser.add_argument("--keep", type=Path, help="run in this (new) directory and keep it: process logs, sink output")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with ExitStack() as scope:
        workdir = (args.keep.resolve() if args.keep  # the processes run with their own working directory
                   else Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="logweave-bench-live-"))))
        for pods, rate in args.rows:
            rows.append(with_floor(run_logweave(workdir, pods, rate, args), workdir, args))
            print(describe(rows[-1]) + "\n", flush=True)
        for pods, rate in args.pod_rows:
            rows.append(with_floor(run_logweave(workdir, pods, rate, args, source="pods"), workdir, args))
            print(describe(rows[-1]) + "\n", flush=True)
        for pods, rate in args.pod_tls_rows:  # for the collector: the worker gets what the rows above bring it
            rows.append(run_logweave(workdir, pods, rate, args, source="pods-tls"))
            print(describe(rows[-1]) + "\n", flush=True)
        for pods, rate in args.peer:
            rows.append(run_peer(workdir, pods, rate, args))
            print(describe(rows[-1]) + "\n", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"broker": rows[0]["broker"] if rows else "", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
