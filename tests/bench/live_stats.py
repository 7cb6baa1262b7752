"""The arithmetic of the live benchmark, kept pure so it is unit-tested (tests/unit/bench/test_live_stats.py).

- `write_time`: the `"wt":<epoch ns>` a live writer put in a line, found in any document that
  carries the line's fields (a file-sink NDJSON line, a raw Kafka message from a peer).
- `Arrivals`: when each line showed up at the end of the pipeline, beside when it was written.
- `latency_summary`: p50/p99 of (arrival - write) for the lines written in the measured window; a
  line that never arrived counts with the time it had been waiting when the run ended, and the
  percentile is then flagged as a lower bound (a pipeline that falls behind must not look fast
  because its late lines were left out).
- `lag_by_topic`: consumer-group lag per topic from the per-partition figures.
- `verdicts`: each figure beside its target from issue #19.
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from dataclasses import dataclass, field
from typing import Any

_WT = re.compile(rb'"wt":(\d+)')

TARGET_P99_S = 1.0  # a line written is in the sink within 1 s (p99)
TARGET_WORKER_CPU = 1.5  # CPU s per 100K lines, worker
TARGET_COLLECTOR_CPU = 0.6  # CPU s per 100K lines, collector
TARGET_COLLECTOR_RSS_MIB = 150.0  # 1,000 pods
TARGET_ONE_WORKER_LINES = 10_000  # lines/s one worker process keeps up with
KEPT_UP_RATIO = 0.95  # delivered / offered in the window
# CPU per 100K lines is judged on a node's shapes (thousands of lines/s). On a quiet node (the 50 x 0.5
# row, there for its latency) the processes' fixed cost while idle is most of it: shown, not judged.
CPU_JUDGED_FROM_LINES = 1_000


def cpu_judged(row: dict[str, Any]) -> bool:
    """Whether the row's CPU per 100K lines stands against the targets (it offered a node's rate)."""
    return float(row.get("offered_lines_per_s") or 0) >= CPU_JUDGED_FROM_LINES


def write_time(line: bytes) -> int | None:
    found = _WT.search(line)
    return int(found.group(1)) if found else None


@dataclass
class Arrivals:
    """(write ns, arrival ns) of every line seen at the end of the pipeline; a tail thread adds while
    the benchmark reads, so reads work on a copy taken under the lock."""

    written: array[int] = field(default_factory=lambda: array("q"))
    arrived: array[int] = field(default_factory=lambda: array("q"))
    unstamped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, line: bytes, arrival_ns: int) -> None:
        stamp = write_time(line)
        with self._lock:
            if stamp is None:
                self.unstamped += 1
                return
            self.written.append(stamp)
            self.arrived.append(arrival_ns)

    def snapshot(self) -> tuple[array[int], array[int]]:
        with self._lock:
            return array("q", self.written), array("q", self.arrived)

    def arrived_between(self, start_ns: int, end_ns: int) -> int:
        return sum(1 for t in self.snapshot()[1] if start_ns <= t < end_ns)

    def written_between(self, start_ns: int, end_ns: int) -> int:
        return sum(1 for t in self.snapshot()[0] if start_ns <= t < end_ns)

    def delays_of_written_between(self, start_ns: int, end_ns: int) -> list[float]:
        written, arrived = self.snapshot()
        return [(a - w) / 1e9 for w, a in zip(written, arrived, strict=True) if start_ns <= w < end_ns]


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list: the smallest value with at least
    q% of the values at or below it."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(delays: list[float], missing: int, waited_s: float) -> dict[str, Any]:
    """p50/p99 of `delays` (seconds) with `missing` lines that had waited `waited_s` when the run
    ended and never arrived. Their true delays are unknown but at least `waited_s`, so each counts as
    `waited_s`: a percentile is exact when enough arrived lines were faster than that, otherwise it is
    a lower bound and flagged so."""
    if missing < 0:
        raise ValueError(f"more lines arrived than were written ({-missing} extra): duplicates?")
    ordered = sorted([*delays, *([waited_s] * missing)])
    out: dict[str, Any] = {"missing": missing}
    if not ordered:
        return {**out, "p50_s": None, "p99_s": None, "p50_lower_bound": False, "p99_lower_bound": False}
    faster = sum(1 for d in delays if d < waited_s) if missing else len(delays)
    for name, q in (("p50", 50.0), ("p99", 99.0)):
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        out[f"{name}_s"] = round(percentile(ordered, q), 4)
        out[f"{name}_lower_bound"] = rank > faster
    return out


def lag_by_topic(behind: dict[str, int]) -> dict[str, int]:
    """{"topic/partition": records} (tests/support/quiescence.group_behind) -> records per topic.

    Topic names may hold slashes only before the last one; a key without a partition is refused."""
    totals: dict[str, int] = {}
    for key, records in behind.items():
        topic, sep, partition = key.rpartition("/")
        if not sep or not topic or not partition.isdigit():
            raise ValueError(f"not a topic/partition key: {key!r}")
        totals[topic] = totals.get(topic, 0) + records
    return totals


def kept_up(offered: float, delivered: float, missing: int) -> bool:
    """Delivered kept pace with what was offered and every line of the window arrived."""
    return offered > 0 and delivered >= KEPT_UP_RATIO * offered and missing == 0


def verdicts(row: dict[str, Any]) -> list[str]:
    """One line per target: the figure, the target, met or missed."""
    out = []

    def say(figure: str, target: str, met: bool | None) -> None:
        out.append(f"{figure:<46} target {target:<34} {'-' if met is None else ('met' if met else 'MISSED')}")

    up = bool(row.get("kept_up"))
    p99 = row.get("p99_s")
    p99_text = "-" if p99 is None else f"{'>= ' if row.get('p99_lower_bound') else ''}{p99:.3f} s"
    say(f"kept up: {'yes' if up else 'no'}, p99 {p99_text}", "keeps up, p99 write -> sink < 1 s",
        up and p99 is not None and p99 < TARGET_P99_S and not row.get("p99_lower_bound"))
    if row.get("offered_lines_per_s", 0) >= 0.95 * TARGET_ONE_WORKER_LINES and "worker_cpu_per_100k" in row:
        say(f"{row['offered_lines_per_s']:,.0f} lines/s on one worker: {'kept up' if up else 'fell behind'}",
            "10K lines/s keeps up on one worker", up)
    for key, label, target in (("worker_cpu_per_100k", "worker", TARGET_WORKER_CPU),
                               ("collector_cpu_per_100k", "collector", TARGET_COLLECTOR_CPU)):
        if row.get(key) is not None:
            say(f"{label} CPU {row[key]:.3f} s / 100K lines", f"<= {target} s / 100K" if cpu_judged(row) else
                f"judged from {CPU_JUDGED_FROM_LINES:,} lines/s", row[key] <= target if cpu_judged(row) else None)
    if row.get("pods", 0) >= 1000 and row.get("collector_peak_rss_mib") is not None:
        rss = row["collector_peak_rss_mib"]
        say(f"collector peak RSS {rss:.0f} MiB", f"<= {TARGET_COLLECTOR_RSS_MIB:.0f} MiB at 1,000 pods",
            rss <= TARGET_COLLECTOR_RSS_MIB)
    return out


def broker_dominates(broker_cpu: float | None, others: dict[str, float]) -> str:
    """A sentence when the broker's own CPU exceeds every Logweave process's, else ''."""
    if broker_cpu is None or not others or broker_cpu <= max(others.values()):
        return ""
    parts = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in others.items())
    return f"the broker's own CPU dominates: {broker_cpu:.1f} s in the window vs {parts}"
