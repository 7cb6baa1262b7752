"""The live table of the benchmark report (tests/bench/bench_live.py's rows), kept beside report.py.

Each figure that has a target from issue #19 is marked met or missed; a percentile that is only a
lower bound (lines still missing when the run ended) is shown with "≥". A failed or missing live
run renders as one "failed: <reason>" row, like the other tables.
"""

from __future__ import annotations

from typing import Any

from tests.bench.live_stats import (
    CPU_JUDGED_FROM_LINES,
    TARGET_COLLECTOR_CPU,
    TARGET_COLLECTOR_RSS_MIB,
    TARGET_P99_S,
    TARGET_WORKER_CPU,
    cpu_judged,
)
from tests.bench.report import _cell, _ms, _num, _rss, failure_reason


def _met(text: str, met: bool | None) -> str:
    return text if met is None or text == "-" else f"{text} ({'met' if met else 'missed'})"


def _floor(row: dict[str, Any]) -> str:
    """The faust floor fed the worker's records (tests/bench/live_floor.py): its CPU per 100K lines, and
    the records/s x lines it was fed; "-" when not run (peer and quiet rows, --no-floor)."""
    floor = row.get("faust_floor")
    if not floor or floor.get("cpu_per_100k") is None:
        return "-"
    behind = "" if floor.get("forwarded_all", True) else ", fell behind"
    return (f"{floor['cpu_per_100k']:.2f} ({_num(floor.get('records_per_s'), '.0f')} x "
            f"{_num(floor.get('lines_per_record'))}{behind})")


def live_row(row: dict[str, Any]) -> str:
    """One live row: rates, keep-up, lag, latency, CPU and memory, each target-bound figure marked."""
    peer = row.get("kind") == "peer"
    p50, p99 = row.get("p50_s"), row.get("p99_s")
    p50_text = "-" if p50 is None else ("≥ " if row.get("p50_lower_bound") else "") + _ms(p50)
    p99_text = "-" if p99 is None else ("≥ " if row.get("p99_lower_bound") else "") + _ms(p99)
    p99_met = None if p99 is None else bool(p99 < TARGET_P99_S and not row.get("p99_lower_bound"))
    lag = row.get("lag_window_end") or {}
    lag_text = "-" if peer or not lag else f"{lag.get('logs.raw', 0):,} / {lag.get('sink.file', 0):,}"
    worker, broker = row.get("worker_cpu_per_100k"), row.get("broker_cpu_per_100k")
    collector = row.get("shipper_cpu_per_100k" if peer else "collector_cpu_per_100k")
    judged = cpu_judged(row)
    collector_met = None if collector is None or peer or not judged else collector <= TARGET_COLLECTOR_CPU
    rss = row.get("shipper_peak_rss_mib" if peer else "collector_peak_rss_mib")
    rss_met = None if peer or rss is None or row.get("pods", 0) < 1000 else rss <= TARGET_COLLECTOR_RSS_MIB
    kept = "-" if row.get("kept_up") is None else ("yes" if row["kept_up"] else "no")
    if row.get("missing"):
        kept += f", {row['missing']:,} lines missing"
    return (f"| {_cell(str(row.get('name', '?')))} | {_num(row.get('offered_lines_per_s'))} | "
            f"{_num(row.get('delivered_lines_per_s'))} | {kept} | {lag_text} | {p50_text} | "
            f"{_met(p99_text, p99_met)} | "
            f"{_met(_num(worker, '.2f'), None if worker is None or not judged else worker <= TARGET_WORKER_CPU)} | "
            f"{_floor(row)} | {_met(_num(collector, '.2f'), collector_met)} | "
            f"{_num(broker, '.2f')} | {_met(_rss(rss), rss_met)} | {_rss(row.get('worker_peak_rss_mib'))} |")


def live_lines(results: dict[str, Any]) -> list[str]:
    """The live table (bench_live): pods writing at their own pace, when that benchmark ran."""
    result = results.get("live")
    if result is None:
        return []
    out = ["", "Live: writer processes append to pod log files at the rate shown (each file on its own schedule, "
           "a few rotated), through the file collector, the broker and one worker to the file sink (the Kubernetes API "
           "rows: live pods behind the Kubernetes API test server, through the pod collector, its "
           "`pods.max_streams` raised to the number of pods above its default 500; those \"over TLS\": that "
           "server serving HTTPS, as every real API server does, with no faust floor of their own); latency is "
           "a line's write time to its appearance in the sink file (the rsyslog peer: in its Kafka topic). Lag: "
           "records of logs.raw / sink.file the worker had not committed when the window closed. Targets: p99 < 1 s, "
           "worker <= 1.5 and collector <= 0.6 CPU s per 100K lines, collector <= 150 MiB at 1,000 pods. The "
           f"quiet row (50 pods x 0.5 lines/s) is there for its latency: its CPU per line, mostly the cost of idle "
           f"processes, is not judged (from {CPU_JUDGED_FROM_LINES:,} lines/s). The faust floor is faust alone "
           "(the worker's two hops, fan-out to four partitions, no decoding, parsing, grouping, table or drain) "
           "fed, on a fresh broker, the logs.raw records/s and lines per record the row's worker took: what "
           "moving those records costs before any work on their lines.", "",
           "| live: pods x lines/s each | offered lines/s | delivered lines/s | kept up | lag raw / sink | p50 | p99 "
           "| CPU s/100K worker | CPU s/100K faust floor (records/s x lines it was fed) "
           "| CPU s/100K collector (peer: rsyslogd) | CPU s/100K broker | peak RSS collector "
           "| peak RSS worker |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if not isinstance(result, dict) or "error" in result:
        return [*out, f"| live | failed: {_cell(failure_reason(result))} | | | | | | | | | | | |"]
    rows = result.get("rows") or []
    if not rows:
        return [*out, "| live | failed: no rows in the live result | | | | | | | | | | | |"]
    dominated = [str(row.get("name")) for row in rows if row.get("broker_note")]
    starved = [f"{row.get('name')}: worker {row['runqueue_wait_s']['worker']:.0f} s"
               for row in rows if (row.get("runqueue_wait_s") or {}).get("worker", 0) > 0.25 * row.get("seconds", 60)]
    loads = [row["load_avg_1m"][1] for row in rows if row.get("load_avg_1m")]
    tail = [f"Broker: {rows[0].get('broker', 'unknown')}."]
    if loads:
        tail.append(f"1-min load average at the window ends: {', '.join(f'{x:.1f}' for x in loads)} "
                    "(a machine shared with other work inflates latency and CPU).")
    if starved:
        tail.append("Threads runnable but waiting for a CPU in the window (an oversubscribed machine; rates and "
                    f"latency are then worse than the processes alone give): {'; '.join(starved)}.")
    if dominated:
        tail.append(f"The broker's own CPU exceeded each shipping process's in: {'; '.join(dominated)}.")
    return [*out, *(live_row(row) for row in rows), "", " ".join(tail)]
