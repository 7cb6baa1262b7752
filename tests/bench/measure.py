"""Process measurements for benchmarks: CPU seconds and peak RSS of a pid from /proc, a counter read
from a process's Prometheus /metrics page and when to read it again, and a table printer."""

from __future__ import annotations

import os
import time
import urllib.request
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its reaped children."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` and its reaped children: system time is the kernel's work for it
    (writes, page faults), which varies with the machine more than the process's own."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[13])) / TICKS, (int(fields[12]) + int(fields[14])) / TICKS


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the live threads of `pid` spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat).

    On a shared machine this tells a process that is slow from one that was not given a core."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scrape_metric(port: int, name: str) -> float:
    """The value of `name` on 127.0.0.1:`port`/metrics, its samples summed over their labels: 0.0 when the
    page has no such sample yet, -1.0 when the page does not answer (the process is still starting)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            rows = response.read().decode().splitlines()
    except OSError:
        return -1.0
    return sum(float(row.rsplit(" ", 1)[1]) for row in rows if row.startswith((name + " ", name + "{")))


class ScrapePacer:
    """When to scrape a measured process's /metrics again, waiting for `total` to be done: half the time its
    last rate (done per second between the last two scrapes) leaves to the end, from 0.02 to 0.5 s; 0.25 s
    while no rate is known (starting, stalled). The process pays for each scrape (prometheus_client's
    server starts a thread per request: ~3 ms of CPU on the README's VM); scraped 20 times a second all
    through, that was ~8% of the pod collector row's CPU, where Prometheus scrapes every 15-60 s. Paced,
    a run of a few seconds takes about ten scrapes, and the last still comes within ~20 ms of the end."""

    def __init__(self, total: float) -> None:
        self.total = total
        self.scrapes = 0
        self._last: tuple[float, float] | None = None  # (when, done) at the last scrape

    def pause(self, done: float, now: float | None = None) -> float:
        """Seconds to sleep after a scrape that found `done` (at `now`, default: the monotonic clock)."""
        now = time.monotonic() if now is None else now
        self.scrapes += 1
        last, self._last = self._last, (now, done)
        rate = (done - last[1]) / (now - last[0]) if last is not None and now > last[0] else 0.0
        if rate <= 0:
            return 0.25
        return min(0.5, max(0.02, (self.total - done) / rate / 2))


def tree_pids(pid: int) -> list[int]:
    """`pid` and its descendants (e.g. noida-db's server binary under its launcher)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                continue
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children.get(current, []))
    return out


@dataclass
class Row:
    name: str
    lines: int
    seconds: float
    cpu: float
    rss_mib: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu / self.lines * 100_000 if self.lines else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "lines": self.lines, "seconds": round(self.seconds, 3),
                "lines_per_s": round(self.rate), "cpu_s_per_100k": round(self.cpu_per_100k, 3),
                "peak_rss_mib": round(self.rss_mib, 1), "note": self.note}


def table(rows: list[Row]) -> str:
    header = f"| {'stage':<44} | {'lines/s':>9} | {'CPU s/100K':>10} | {'peak RSS MiB':>12} | note"
    lines = [header, "|" + "-" * 46 + "|" + "-" * 11 + "|" + "-" * 12 + "|" + "-" * 14 + "|------"]
    for row in rows:
        lines.append(f"| {row.name:<44} | {row.rate:>9,.0f} | {row.cpu_per_100k:>10.3f} | {row.rss_mib:>12.1f} | "
                     f"{row.note}")
    return "\n".join(lines)
