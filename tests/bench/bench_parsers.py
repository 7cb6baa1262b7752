"""Text parsers beside the JSON path, and multiline joining beside the plain collector, each in one run.

The targets (issue "Beyond JSON") are per process, so the rows that decide them run real processes
on the embedded broker (with KAFKA_BROKERS set: on that Kafka, under topics of their own), the same way
in the same run:
- worker (parse + group + route, one process, stages parse,group): `--worker-lines` lines preloaded
  into logs.raw, 10 per trace, as JSON (the limit), logfmt, and nginx combined lines with a trace id
  (a user grok parser over the built-in HTTP_COMBINED_FIELDS); each kind on a fresh broker, two rounds
  in turn, the faster of each kind kept. Target: logfmt and grok >= 0.5x the JSON rate.
- file collector (`python -m collectors.files`, one core): the same CRI file, where 6 of every 15
  lines are a Java stack trace, with no multiline rule (the limit) and with the `java` detector;
  lines/s counts physical lines. Target: >= 0.8x the plain rate.
In-process rows, to show where the time goes (no Kafka; not what the targets are about):
- parse stage (LineParser.parse_chunk, 1,000-line chunks): JSON through the C scan, logfmt, grok
  nginx combined, grok klog;
- file tailer (TailedFile.read_lines, file in page cache): plain and with the `java` detector.

Run: `python -m tests.bench.bench_parsers --out bench/parsers.json` (`--lines N`, `--worker-lines N`,
`--collector-lines N` to change the sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.line_parser import LineParser
from collectors.files.tailer import TailedFile, fingerprint
from collectors.multiline import CompiledRule, MultilineJoiner
from core.models import RawChunk
from core.rule_settings import MultilineRule
from core.settings import ParseSettings
from tests.bench.bench_worker import make_doc
from tests.bench.brokers import broker_label
from tests.bench.parser_processes import TARGETS, collector_rows, worker_rows

CHUNK = 1000
COLLECTED = 1_749_543_941_000_000_000


def measure(work: Callable[[], int], rounds: int = 3) -> tuple[float, float]:
    """Best lines/s of `rounds` runs, and CPU seconds per 100K lines of that run."""
    best = (0.0, 0.0)
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        lines = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if lines / wall > best[0]:
            best = (lines / wall, cpu / lines * 100_000)
    return best


def parse_rows(total: int) -> list[dict[str, Any]]:
    settings = ParseSettings(untraced="pass")
    samples: dict[str, tuple[dict[str, Any], Callable[[int], str]]] = {
        "parse JSON (C scan)": ({"kind": "file"}, lambda n: make_doc(n, COLLECTED + n).decode()),
        "parse logfmt": ({"annotations": {"logweave.io/parser": "logfmt"}}, lambda n: (
            f"time=2025-06-10T08:25:41.{n % 10**9:09d}Z level=info msg=\"request handled by the checkout service\" "
            f"traceId=trace-{n // 10:09d} service=checkout n={n} user=u-12345 path=/api/v1/cart/items")),
        "parse grok nginx": ({"annotations": {"logweave.io/parser": "nginx"}}, lambda n: (
            f'10.244.1.17 - - [10/Jun/2025:08:25:{n % 60:02d} +0000] "GET /api/v1/cart/items/{n} HTTP/1.1" 200 '
            f'{n % 5000} "https://shop.example.com/cart" "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Firefox/119.0"')),
        "parse grok klog": ({"annotations": {"logweave.io/parser": "klog"}}, lambda n: (
            f'I0610 08:25:{n % 60:02d}.{n % 10**6:06d}       1 controller.go:148] "Syncing deployment" '
            f'deployment="shop/checkout" trace_id=trace-{n // 10:09d}')),
    }
    rows = []
    for name, (source, make) in samples.items():
        parser = LineParser(settings)
        chunks = [[[n, make(n), "stdout", 0, 0] for n in range(start, start + CHUNK)]
                  for start in range(0, min(total, 50 * CHUNK), CHUNK)]

        def work(parser: LineParser = parser, chunks: list[list[list[Any]]] = chunks,
                 source: dict[str, Any] = source) -> int:
            done = 0
            while done < total:
                for lines in chunks:
                    parser.parse_chunk(RawChunk(source, "sid", COLLECTED, lines), 4)
                    done += len(lines)
            return done

        rate, cpu = measure(work)
        rows.append({"name": name, "lines_per_s": rate, "cpu_s_per_100k": cpu})
    return rows


def write_log(path: Path, total: int) -> None:
    stamp = b"2025-06-10T08:25:41.630702460Z stdout F "
    trace = [b"java.lang.IllegalStateException: card declined",
             b"\tat com.example.shop.Payments.charge(Payments.java:42)",
             b"\tat com.example.shop.CheckoutController.checkout(CheckoutController.java:77)",
             b"Caused by: java.net.SocketTimeoutException: Read timed out",
             b"\t... 3 common frames omitted"]
    with open(path, "wb") as handle:
        n = 0
        while n < total:
            block = [stamp + make_doc(n + k, COLLECTED) + b"\n" for k in range(9)]
            block.append(stamp + b"ERROR payment failed for order %d\n" % n)
            block += [stamp + line + b"\n" for line in trace]
            handle.write(b"".join(block))
            n += len(block)


def tailer_rows(total: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "0.log"
        write_log(path, total)
        with open(path, "rb") as handle:
            lines = sum(1 for _ in handle)
        rule = CompiledRule(MultilineRule(detectors=["java"]))
        for name, joined in (("file tailer, plain", False), ("file tailer, multiline java", True)):
            def work(joined: bool = joined) -> int:
                fd = os.open(path, os.O_RDONLY)
                st = os.fstat(fd)
                tailed = TailedFile(path, fd, st.st_dev, st.st_ino, fingerprint(fd) or "", 0, 0, "cri", {}, 1 << 20)
                if joined:
                    tailed.joiner = MultilineJoiner(rule)
                while tailed.read_lines():
                    pass
                tailed.flush_pending()
                tailed.close()
                return lines
            rate, cpu = measure(work)
            rows.append({"name": name, "lines_per_s": rate, "cpu_s_per_100k": cpu})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--worker-lines", type=int, default=300_000)
    parser.add_argument("--collector-lines", type=int, default=600_000)
    parser.add_argument("--out", type=Path, default=Path("bench/parsers.json"))
    args = parser.parse_args()
    rows = parse_rows(args.lines) + tailer_rows(args.lines * 3)
    limits = {"parse ": rows[0], "file tailer": next(r for r in rows if r["name"] == "file tailer, plain")}
    process_rows = worker_rows(args.worker_lines) + collector_rows(args.collector_lines)
    limits["worker"], limits["collector"] = process_rows[0], next(r for r in process_rows if "plain" in r["name"])
    rows += process_rows
    for row in rows:
        kind = next(prefix for prefix in limits if row["name"].startswith(prefix))
        row["ratio"] = round(row["lines_per_s"] / limits[kind]["lines_per_s"], 3)
        # on a shared machine the wall-clock rates swing with the neighbours' load; CPU per line does much less:
        # the rate ratio a CPU-bound process would have on a core of its own
        row["cpu_ratio"] = round(limits[kind]["cpu_s_per_100k"] / row["cpu_s_per_100k"], 3)
        target = TARGETS.get(row["name"])
        verdict = ""
        if target is not None:
            row["target_ratio"] = target
            verdict = f"  target >= {target:.2f}x: {'met' if row['ratio'] >= target else 'MISSED'}"
        print(f"{row['name']:44} {row['lines_per_s']:>12,.0f} lines/s  {row['ratio']:.2f}x  "
              f"{row['cpu_s_per_100k']:.3f} CPU s/100K ({row['cpu_ratio']:.2f}x by CPU){verdict}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"broker: {broker_label()}")
    args.out.write_text(json.dumps({"broker": broker_label(), "rows": rows, "targets": TARGETS}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
