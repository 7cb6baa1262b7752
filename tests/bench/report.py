"""The benchmark report: bench/results.json -> the README's Markdown tables and a PNG chart.

Pure functions of the merged results dict that `run_all` writes, so the table can be tested without
running a benchmark. Each stage is shown beside the limit measured in the same run on the same
broker, with the ratio. A benchmark that is missing or failed becomes a "failed: <reason>" row and
the rest still render: a report that crashes on one bad run hides the runs that worked.
matplotlib is imported only by `write_chart` (the optional `bench` extra), never by the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass
class StageRow:
    """One stage's rate beside its same-run limit; `failed` holds the reason when there is no figure."""

    stage: str
    rate: float | None = None
    limit_name: str = ""
    limit_rate: float | None = None
    cpu_per_100k: float | None = None
    rss_mib: float | None = None
    failed: str = ""

    @property
    def ratio(self) -> float | None:
        return self.rate / self.limit_rate if self.rate and self.limit_rate else None


@dataclass
class LatencyRow:
    offered: int
    achieved: float | None = None
    delivered: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None
    kept_up: bool | None = None
    failed: str = ""


def failure_reason(result: Any) -> str:
    """A one-line reason: the last line of a failed bench's stderr, or why its result is unusable."""
    if result is None:
        return "no result (benchmark not run)"
    if isinstance(result, dict) and "error" in result:
        lines = [line.strip() for line in str(result["error"]).splitlines() if line.strip()]
        return (lines[-1] if lines else "exited non-zero without output")[:160]
    return "result has an unexpected shape"


def find(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    for row in rows:
        if str(row.get("name", "")).strip().startswith(prefix):
            return row
    raise KeyError(f"no row {prefix!r}")


def _stage(row: dict[str, Any], stage: str, limit: dict[str, Any] | None = None, limit_name: str = "",
           limit_rate: float | None = None) -> StageRow:
    rss = row.get("peak_rss_mib")
    return StageRow(stage, row.get("lines_per_s"), limit_name or (limit or {}).get("name", ""),
                    limit_rate if limit_rate is not None else (limit or {}).get("lines_per_s"),
                    row.get("cpu_s_per_100k"), rss or None)


def collector_rows(result: dict[str, Any]) -> list[StageRow]:
    rows = result["rows"]
    native = find(rows, "confluent")
    name = "confluent-kafka (librdkafka) producer, one message per line"
    out = [_stage(find(rows, "collector, 1 file"), "file collector, 1 file", native, name),
           _stage(find(rows, "collector, 100 files"), "file collector, 100 files", native, name)]
    for files in ("1 file", "100 files"):  # the C shipper peer, when the run had rsyslog (issue #19: >= 1.2x)
        peer = next((row for row in rows if str(row.get("name", "")) == f"rsyslog imfile -> omkafka, {files}"), None)
        if peer is not None:
            out.append(_stage(find(rows, f"collector, {files}"), f"- the same collector run ({files}), beside rsyslog",
                              peer, RSYSLOG_PEER))
    return out


RSYSLOG_PEER = ("rsyslog imfile -> omkafka, same files, same core; one message per raw line, no CRI parsing, "
                "stream ids, positions or ack-gated checkpoints")


def pod_collector_rows(result: dict[str, Any]) -> list[StageRow]:
    rows = result["rows"]
    read, produce = find(rows, "bare aiohttp read"), find(rows, "bare aiokafka")
    slower = min(read, produce, key=lambda r: r["lines_per_s"])
    name = "slower of bare aiohttp read / bare aiokafka produce (" + ("read" if slower is read else "produce") + ")"
    return [_stage(find(rows, "pod collector"), f"pod collector, {result.get('pods', '?')} pods", slower, name)]


QUIXSTREAMS_PEER = ("quixstreams peer, same two hops, RocksDB state, one update per trace per chunk; does not "
                    "dead-letter, parse times, normalize level/service, dedupe lines, window or close traces, "
                    "or apply routing rules")


def worker_rows(result: dict[str, Any]) -> list[StageRow]:
    """The worker beside the bare limit; beside the faust floor and the quixstreams peer of the same round
    when they ran. The peer also gets a row of its own for its CPU and memory."""
    rows = result["rows"]
    worker = find(rows, "worker")
    out = [_stage(worker, "worker parse + group + route (1 process)", find(rows, "raw aiokafka"),
                  "bare aiokafka consume + parse + re-chunk + produce")]
    if any(str(row.get("name", "")).startswith("faust floor") for row in rows):
        out.append(_stage(worker, "- the same worker run, beside the faust floor", find(rows, "faust floor"),
                          "faust, same two hops, records forwarded untouched (no decode, no table)"))
    if any(str(row.get("name", "")).startswith("quixstreams") for row in rows):
        peer = find(rows, "quixstreams")
        out.append(_stage(worker, "- the same worker run, beside quixstreams (peer)", peer, QUIXSTREAMS_PEER))
        out.append(_stage(peer, f"- {QUIXSTREAMS_PEER}"))
    return out


def pipeline_rows(result: dict[str, Any]) -> list[StageRow]:
    rows = result["rows"]
    produce, consume = find(rows, "raw aiokafka produce"), find(rows, "raw aiokafka consume")
    slower = min(produce, consume, key=lambda r: r["lines_per_s"])
    which = "produce" if slower is produce else "consume"
    end_to_end = find(rows, "pipeline end to end")
    out = [_stage(end_to_end, f"pipeline end to end, {end_to_end.get('note', '')} -> file sink", slower,
                  f"slower of bare aiokafka produce / consume, 1,000-line chunks ({which})")]
    parts = [("file collector process", "- file collector process"),
             ("worker process", "- worker process (parse, group, route, drain, file sink)")]
    if any(str(row.get("name", "")).strip().startswith("broker") for row in rows):  # none on an external Kafka
        parts.append(("broker", "- embedded broker (noida-db), for scale"))
    for prefix, label in parts:
        part = _stage(find(rows, prefix), label)
        part.rate = None  # the processes share the end-to-end rate; their rows are CPU and memory
        out.append(part)
    return out


def intake_rows(result: dict[str, Any]) -> list[StageRow]:
    rows = result["rows"]
    out = [_stage(find(rows, "intake HTTP, NDJSON"), "intake HTTP, NDJSON 1,000-line requests x8",
                  find(rows, "bare aiohttp")),
           _stage(find(rows, "intake forward"), "intake forward, PackedForward 1,000 entries x8",
                  find(rows, "bare asyncio"))]
    if any(str(row.get("name", "")).startswith("intake syslog") for row in rows):
        out.append(_stage(find(rows, "intake syslog"), "intake syslog TCP, RFC 5424 octet-counted x8",
                          find(rows, "rsyslog")))
    return out


def parser_rows(result: dict[str, Any]) -> list[StageRow]:
    """A worker on text lines beside the same worker on JSON lines, the collector with multiline beside it
    without, each with its target (these decide the issue's targets); then the in-process parse and tailer
    rows that show where the time goes. Older results without the process rows show the latter only."""
    rows = result["rows"]
    out: list[StageRow] = []
    for limit_prefix, kinds, limit_name in (
            ("worker, JSON", ("worker, ",), "the same worker on JSON lines, same run"),
            ("collector, plain", ("collector, multiline",), "the same collector and file, no multiline rule")):
        limit = next((row for row in rows if str(row["name"]).startswith(limit_prefix)), None)
        for row in rows:
            if limit is not None and row is not limit and str(row["name"]).startswith(kinds):
                target = row.get("target_ratio")
                suffix = "" if target is None else f" (target >= {target:.2f}x: " + (
                    "met)" if row["lines_per_s"] >= target * limit["lines_per_s"] else "missed)")
                out.append(_stage(row, str(row["name"]) + suffix, limit, limit_name))
    json_path, plain = find(rows, "parse JSON"), find(rows, "file tailer, plain")
    out += [_stage(row, f"- {row['name']}, in process", json_path, "parse stage, JSON through the C scan")
            for row in rows if str(row["name"]).startswith("parse ") and row is not json_path]
    out.append(_stage(find(rows, "file tailer, multiline"), "- file tailer, multiline java, in process", plain,
                      "file tailer, plain (same file)"))
    return out


PREBUILT = "same client, pre-built bulk requests"  # the limit of every sink row that names no other


def sink_rows(result: dict[str, Any]) -> list[StageRow]:
    return [StageRow(f"sink {row['name']}", row["lines_per_s"], row.get("limit", PREBUILT),
                     row["limit_lines_per_s"], row["cpu_s_per_100k"]) for row in result["sinks"]]


SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], list[StageRow]]]] = [
    ("collector", "file collector", collector_rows),
    ("pod_collector", "pod collector", pod_collector_rows),
    ("worker", "worker", worker_rows),
    ("pipeline", "pipeline end to end", pipeline_rows),
    ("sinks", "sinks", sink_rows),
    ("intake", "push intake", intake_rows),
    ("parsers", "text parsers and multiline", parser_rows),
]


def stage_rows(results: dict[str, Any]) -> list[StageRow]:
    out: list[StageRow] = []
    for key, label, build in SECTIONS:
        result = results.get(key)
        if not isinstance(result, dict) or "error" in result:
            out.append(StageRow(label, failed=failure_reason(result)))
            continue
        try:
            out.extend(build(result))
        except (KeyError, TypeError, ValueError) as exc:
            out.append(StageRow(label, failed=f"unreadable result: {exc}"[:160]))
    return out


def latency_rows(results: dict[str, Any]) -> list[LatencyRow]:
    result = results.get("worker")
    if not isinstance(result, dict) or "error" in result:
        return [LatencyRow(0, failed=failure_reason(result))]
    runs = result.get("latency")
    runs = [runs] if isinstance(runs, dict) else runs or []
    if not runs:
        return [LatencyRow(0, failed="no latency runs in the worker result")]
    return [LatencyRow(int(run.get("offered_lines_per_s", 0)), run.get("achieved_offered_lines_per_s"),
                       run.get("delivered_lines_per_s"), run.get("p50_s"), run.get("p99_s"), run.get("kept_up"),
                       "" if run.get("p50_s") is not None else "no line arrived")
            for run in runs]


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _rss(mib: float | None) -> str:
    if not mib:
        return "-"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:,.0f} MiB"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# the benchmarks of this table that run on KAFKA_BROKERS when it is set (tests/bench/run_all.py; the live
# table says its own broker), as the header names them
EXTERNAL_CAPABLE = (("worker", "the worker's rows and latencies"), ("pipeline", "the end-to-end rows"),
                    ("collector", "the file collector's rows"), ("pod_collector", "the pod collector's row"),
                    ("intake", "the intake rows"), ("parsers", "the text-parser and multiline process rows"),
                    ("sinks", "the Kafka sink's row"))


def brokers_used(results: dict[str, Any]) -> str:
    """Which broker the rows ran on: the embedded one, unless a benchmark recorded an external Kafka."""
    ran: list[tuple[str, str]] = []
    for key, what in EXTERNAL_CAPABLE:
        result = results.get(key)
        label = result.get("broker") if isinstance(result, dict) else None
        if isinstance(label, str) and label.startswith("external"):
            ran.append((what, label))
    if not ran:
        return "embedded broker noida-db"
    return (f"{' and '.join(what for what, _ in ran)} on {', '.join(sorted({label for _, label in ran}))}, "
            "the others on the embedded broker noida-db")


def markdown(results: dict[str, Any]) -> str:
    """The machine/date line, the throughput table and the latency table."""
    broker = brokers_used(results)
    lines = [f"Latest run: {results.get('date', 'date unknown')}, {results.get('machine', 'machine unknown')}; "
             f"{broker}, lines of ~250 bytes. Each limit is measured in the same run on the same "
             "broker (the worker's limit, floor, worker and quixstreams peer: in one round, each on a fresh broker "
             "or its own topics; of three rounds, "
             "the one with the median worker rate); ratio = stage / limit.", "",
             "| stage | lines/s | same-run limit | limit lines/s | ratio | CPU s / 100K lines | peak RSS |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for row in stage_rows(results):
        if row.failed:
            lines.append(f"| {_cell(row.stage)} | failed: {_cell(row.failed)} | | | | | |")
            continue
        lines.append(f"| {_cell(row.stage)} | {_num(row.rate)} | {_cell(row.limit_name) or '-'} | "
                     f"{_num(row.limit_rate)} | {_num(row.ratio, '.2f')} | {_num(row.cpu_per_100k, '.3f')} | "
                     f"{_rss(row.rss_mib)} |")
    lines += ["", "| worker latency, collection -> sink topic | offered lines/s | achieved | delivered | p50 | p99 "
              "| kept up |", "|---|---:|---:|---:|---:|---:|---|"]
    for lat in latency_rows(results):
        label = f"at {lat.offered:,} lines/s" if lat.offered else "latency"
        if lat.failed and lat.p50_s is None and not lat.offered:
            lines.append(f"| {label} | failed: {_cell(lat.failed)} | | | | | |")
            continue
        kept = "-" if lat.kept_up is None else ("yes" if lat.kept_up else "no")
        lines.append(f"| {label} | {lat.offered:,} | {_num(lat.achieved)} | {_num(lat.delivered)} | "
                     f"{_ms(lat.p50_s)} | {_ms(lat.p99_s)} | {kept} |")
    from tests.bench.report_live import live_lines  # it formats with this module's helpers

    lines += live_lines(results)
    lines += query_lines(results)
    return "\n".join(lines) + "\n"


def query_lines(results: dict[str, Any]) -> list[str]:
    """The query API latency table (bench_query), when that benchmark ran."""
    result = results.get("query")
    if result is None:
        return []
    out = ["", "| query API latency (HTTP, through the API) | stored lines | p50 | p95 | p99 | p99 target |",
           "|---|---:|---:|---:|---:|---:|"]
    if not isinstance(result, dict) or "error" in result:
        return [*out, f"| query | failed: {_cell(failure_reason(result))} | | | | |"]
    for row in result.get("rows", []):
        met = ""
        if row["backend"] == "postgres":
            met = " (met)" if row["p99_ms"] < row["target_p99_ms"] else " (missed)"
        out.append(f"| {row['backend']}: {_cell(row['query'])} | {row['lines']:,} | {row['p50_ms']:,.1f} ms | "
                   f"{row['p95_ms']:,.1f} ms | {row['p99_ms']:,.1f} ms | {row['target_p99_ms']:,.0f} ms{met} |")
    return out


def replace_between_markers(text: str, block: str) -> str:
    """`text` with everything between the bench markers replaced by `block` (markers kept)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} and {END} are missing or out of order")
    return text[:start + len(START)] + "\n" + block.strip("\n") + "\n" + text[end:]


def write_chart(results: dict[str, Any], path: Path) -> None:
    """Horizontal bars, log scale: each stage's lines/s beside its same-run limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in stage_rows(results) if row.rate and row.limit_rate]
    height = max(3.0, 0.75 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(11, height))
    positions = range(len(rows))
    ax.barh([p + 0.2 for p in positions], [r.limit_rate or 0 for r in rows], height=0.4, color="#b0b0b0",
            label="same-run limit")
    ax.barh([p - 0.2 for p in positions], [r.rate or 0 for r in rows], height=0.4, color="#2b6cb0",
            label="Logweave")
    for p, row in zip(positions, rows, strict=True):
        ax.text(row.rate or 0, p - 0.2, f" {row.rate:,.0f} ({row.ratio:.2f}x)", va="center", fontsize=8)
        ax.text(row.limit_rate or 0, p + 0.2, f" {row.limit_rate:,.0f}", va="center", fontsize=8, color="#555555")
    ax.set_yticks(list(positions), [r.stage for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("lines/s (log scale)")
    ax.set_title(f"Logweave benchmarks, {results.get('date', '')}\n{results.get('machine', '')}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(right=max([r.limit_rate or 0 for r in rows] + [r.rate or 0 for r in rows] + [1]) * 3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
