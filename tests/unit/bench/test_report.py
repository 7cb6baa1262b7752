"""The benchmark report: the Markdown tables from a results dict, failed rows, and the README markers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.report import END, RSYSLOG_PEER, START, markdown, replace_between_markers, stage_rows

ROOT = Path(__file__).resolve().parents[3]


def row(name: str, rate: float, cpu: float = 0.5, rss: float = 0.0, note: str = "") -> dict[str, Any]:
    return {"name": name, "lines": 1_000_000, "seconds": 1_000_000 / rate, "lines_per_s": rate,
            "cpu_s_per_100k": cpu, "peak_rss_mib": rss, "note": note}


def results() -> dict[str, Any]:
    """Shaped like the JSON each bench script writes."""
    return {
        "machine": "Test CPU, 2 cores, 24 GiB RAM, Debian GNU/Linux 12 (bookworm), Python 3.11.2",
        "date": "2026-11-23 10:00 UTC",
        "collector": {"rows": [row("collector, 1 file", 200_000, 0.4, 45.0),
                               row("confluent-kafka producer, one message per line", 500_000, 0.2, 60.0),
                               row("collector, 100 files", 150_000, 0.5, 50.0)]},
        "pod_collector": {"pods": 200, "rows": [row("pod collector -> Kafka (acks=all)", 80_000, 1.0, 70.0),
                                                row("test server (separate process), same run", 80_000),
                                                row("bare aiohttp read of the same logs (limit)", 400_000),
                                                row("bare aiokafka chunks, same lines (limit)", 900_000)]},
        "worker": {"rows": [row("raw aiokafka consume+parse+re-chunk+produce", 300_000),
                            row("worker parse+group+route (1 process)", 51_000, 1.8, 345.0)],
                   "latency": [{"offered_lines_per_s": 10_000, "achieved_offered_lines_per_s": 9_999,
                                "delivered_lines_per_s": 9_950, "p50_s": 0.035, "p99_s": 0.188, "kept_up": True},
                               {"offered_lines_per_s": 50_000, "achieved_offered_lines_per_s": 49_988,
                                "delivered_lines_per_s": 37_046, "p50_s": 2.372, "p99_s": 3.582,
                                "kept_up": False}]},
        "pipeline": {"lines": 1_000_000, "rows": [
            row("raw aiokafka produce (1,000-line chunks)", 1_000_000, note="the limit"),
            row("raw aiokafka consume + orjson", 500_000, note="the limit"),
            row("pipeline end to end (collector -> file sink)", 20_000, 4.0, note="100 files"),
            row("  file collector process", 20_000, 0.5, 47.0),
            row("  worker process (parse+group+route+drain)", 20_000, 3.4, 342.0),
            row("  broker (noida-db)", 20_000, 3.2, 2048.0)]},
        "sinks": {"sinks": [{"name": "etcd (Debian etcd 3.4, JSON gateway)", "lines": 30_000, "seconds": 2.0,
                             "lines_per_s": 15_000, "cpu_s_per_100k": 2.5, "limit_lines_per_s": 20_000,
                             "limit_cpu_s_per_100k": 1.0, "note": ""}]},
    }


def table_row(text: str, stage: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {stage}"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_each_stage_beside_its_same_run_limit_with_ratio_cpu_and_rss() -> None:
    text = markdown(results())
    assert text.startswith("Latest run: 2026-11-23 10:00 UTC, Test CPU, 2 cores")
    assert table_row(text, "file collector, 1 file") == [
        "file collector, 1 file", "200,000", "confluent-kafka (librdkafka) producer, one message per line",
        "500,000", "0.40", "0.400", "45 MiB"]
    assert table_row(text, "worker parse")[1:5] == [
        "51,000", "bare aiokafka consume + parse + re-chunk + produce", "300,000", "0.17"]
    pipeline = table_row(text, "pipeline end to end")
    assert pipeline[1] == "20,000" and pipeline[3] == "500,000" and pipeline[4] == "0.04" and "(consume)" in pipeline[2]
    assert table_row(text, "pod collector, 200 pods")[3] == "400,000"  # the slower limit: the bare read
    assert table_row(text, "- embedded broker")[1:] == ["-", "-", "-", "-", "3.200", "2.0 GiB"]
    assert table_row(text, "sink etcd")[1:5] == ["15,000", "same client, pre-built bulk requests", "20,000", "0.75"]
    assert not any("faust floor" in line for line in text.splitlines())  # results from before the floor existed


def test_file_collector_also_beside_rsyslog_when_measured() -> None:
    data = results()
    assert not any("beside rsyslog" in line for line in markdown(data).splitlines())
    data["collector"]["rows"].append(row("rsyslog imfile -> omkafka, 100 files", 100_000, 0.25, 30.0))
    got = table_row(markdown(data), "- the same collector run (100 files), beside rsyslog")
    assert got[1:5] == ["150,000", RSYSLOG_PEER, "100,000", "1.50"] and got[5:] == ["0.500", "50 MiB"]


def test_worker_also_beside_the_faust_floor_when_measured() -> None:
    data = results()
    data["worker"]["rows"].insert(1, row("faust floor: same two hops, records forwarded untouched", 160_000, 0.45))
    assert table_row(markdown(data), "- the same worker run, beside the faust floor")[1:5] == [
        "51,000", "faust, same two hops, records forwarded untouched (no decode, no table)", "160,000", "0.32"]


def test_worker_beside_the_quixstreams_peer_which_says_what_it_leaves_out() -> None:
    data = results()
    data["worker"]["rows"].append(row("quixstreams parse+state+route (1 process)", 85_000, 0.39, 127.0))
    text = markdown(data)
    beside = table_row(text, "- the same worker run, beside quixstreams (peer)")
    assert [beside[1], beside[3], beside[4], beside[5]] == ["51,000", "85,000", "0.60", "1.800"]
    assert "does not dead-letter" in beside[2] and "window or close traces" in beside[2]
    peer = table_row(text, "- quixstreams peer")
    assert peer[1:] == ["85,000", "-", "-", "-", "0.390", "127 MiB"]
    assert "routing rules" in peer[0]


def test_the_header_names_an_external_kafka_the_worker_rows_ran_on() -> None:
    data = results()
    assert "; embedded broker noida-db, lines" in markdown(data)
    data["worker"]["broker"] = "noida-db (embedded Kafka-protocol broker, fresh per run)"
    assert "; embedded broker noida-db, lines" in markdown(data)
    data["worker"]["broker"] = "external Kafka at k1:9092 (KAFKA_BROKERS)"
    header = markdown(data).splitlines()[0]
    assert "the worker's rows and latencies on external Kafka at k1:9092 (KAFKA_BROKERS), the others on the " \
           "embedded broker noida-db" in header
    data["pipeline"]["broker"] = "external Kafka at k1:9092 (KAFKA_BROKERS)"
    assert "the worker's rows and latencies and the end-to-end rows on external Kafka at k1:9092 (KAFKA_BROKERS), " \
           "the others" in markdown(data).splitlines()[0]
    data["collector"]["broker"] = "external Kafka at k2:9092 (KAFKA_BROKERS)"
    assert "and the file collector's rows on external Kafka at k1:9092 (KAFKA_BROKERS), external Kafka at k2:9092 " \
           "(KAFKA_BROKERS), the others" in markdown(data).splitlines()[0]


def test_the_end_to_end_rows_leave_out_a_broker_not_on_this_machine() -> None:
    data = results()
    assert "- embedded broker (noida-db), for scale" in markdown(data)
    data["pipeline"]["rows"] = [r for r in data["pipeline"]["rows"] if "broker" not in r["name"]]
    text = markdown(data)
    assert "for scale" not in text
    assert table_row(text, "- worker process")[5] == "3.400"  # the pipeline's other rows still render
    assert table_row(text, "pipeline end to end")[1] == "20,000"


def test_latency_rows_per_offered_load() -> None:
    text = markdown(results())
    assert table_row(text, "at 10,000 lines/s") == ["at 10,000 lines/s", "10,000", "9,999", "9,950", "35 ms",
                                                    "188 ms", "yes"]
    assert table_row(text, "at 50,000 lines/s")[4:] == ["2,372 ms", "3,582 ms", "no"]


def test_failed_missing_and_malformed_benches_render_as_failed_rows() -> None:
    data = results()
    data["worker"] = {"error": "Traceback ...\nTimeoutError: worker did not route every line in 900 s\n"}
    del data["sinks"]
    data["collector"] = {"rows": [row("collector, 1 file", 1.0)]}  # no confluent row
    text = markdown(data)
    assert table_row(text, "worker")[1] == "failed: TimeoutError: worker did not route every line in 900 s"
    assert table_row(text, "sinks")[1] == "failed: no result (benchmark not run)"
    assert table_row(text, "file collector")[1].startswith("failed: unreadable result")
    assert table_row(text, "latency")[1] == "failed: TimeoutError: worker did not route every line in 900 s"
    assert table_row(text, "pipeline end to end")[1] == "20,000"  # the others still render


def test_an_empty_result_set_renders_only_failed_rows() -> None:
    rows = stage_rows({})
    assert rows and all(r.failed == "no result (benchmark not run)" for r in rows)
    assert "failed: no result" in markdown({})


def test_pipes_in_names_and_reasons_do_not_break_the_table() -> None:
    text = markdown({"worker": {"error": "ValueError: a | b"}})
    assert "failed: ValueError: a \\| b" in text


def test_replace_between_markers_keeps_everything_outside() -> None:
    text = f"# T\n\n## Benchmarks\nintro\n{START}\nold table\n{END}\nafter\n## Next\n"
    new = replace_between_markers(text, "| new |\n")
    assert new == f"# T\n\n## Benchmarks\nintro\n{START}\n| new |\n{END}\nafter\n## Next\n"
    assert replace_between_markers(new, "| new |\n") == new


@pytest.mark.parametrize("text", ["no markers", f"{END}\n{START}\n", f"{START} only"])
def test_replace_between_markers_refuses_missing_markers(text: str) -> None:
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers(text, "x")


def test_readme_has_the_markers_inside_its_benchmarks_section() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.index("## Benchmarks")
    following = readme.index("\n## ", section + 1)
    assert section < readme.index(START) < readme.index(END) < following


def test_the_table_needs_no_matplotlib() -> None:
    code = "import sys, tests.bench.report as r; r.markdown({}); assert 'matplotlib' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_intake_rows_stand_beside_their_bare_server_limits() -> None:
    from tests.bench.report import intake_rows

    result = {"rows": [{"name": "intake HTTP, NDJSON 1,000-line requests x8", "lines_per_s": 80, "cpu_s_per_100k": 0.2},
                       {"name": "bare aiohttp: body -> one record (limit)", "lines_per_s": 100},
                       {"name": "intake forward, PackedForward 1,000 x8", "lines_per_s": 30},
                       {"name": "bare asyncio: message -> one record (limit)", "lines_per_s": 60}]}
    http, forward = intake_rows(result)
    assert (http.ratio, forward.ratio) == (0.8, 0.5)
    assert forward.limit_name.startswith("bare asyncio")
    result["rows"] += [{"name": "intake syslog TCP, RFC 5424 octet-counted x8", "lines_per_s": 30},
                       {"name": "rsyslog imtcp -> omkafka (peer)", "lines_per_s": 40}]
    syslog = intake_rows(result)[2]
    assert syslog.ratio == 0.75 and syslog.limit_name.startswith("rsyslog")


def test_query_latency_rows_say_whether_the_target_was_met() -> None:
    data = results()
    data["query"] = {"rows": [
        {"backend": "postgres", "query": "trace", "lines": 5_000_000, "p50_ms": 2.0, "p95_ms": 4.0, "p99_ms": 9.5,
         "target_p99_ms": 20.0},
        {"backend": "postgres", "query": "text, 1 h", "lines": 5_000_000, "p50_ms": 90.0, "p95_ms": 200.0,
         "p99_ms": 450.0, "target_p99_ms": 300.0},
        {"backend": "elasticsearch", "query": "trace", "lines": 50_000, "p50_ms": 100.0, "p95_ms": 300.0,
         "p99_ms": 700.0, "target_p99_ms": 20.0}]}
    text = markdown(data)
    assert table_row(text, "postgres: trace") == ["postgres: trace", "5,000,000", "2.0 ms", "4.0 ms", "9.5 ms",
                                                  "20 ms (met)"]
    assert table_row(text, "postgres: text, 1 h")[5] == "300 ms (missed)"
    assert table_row(text, "elasticsearch: trace")[5] == "20 ms"
    assert "query API latency" not in markdown(results())  # not run: no table
    assert "failed: TimeoutError" in markdown({**results(), "query": {"error": "TimeoutError: x"}})


def test_text_parser_and_multiline_rows_beside_their_same_run_limits() -> None:
    data = results()
    data["parsers"] = {"rows": [row("parse JSON (C scan)", 1_000_000, 0.07), row("parse logfmt", 100_000, 0.9),
                                row("parse grok nginx", 80_000, 0.8), row("file tailer, plain", 200_000, 0.2),
                                row("file tailer, multiline java", 120_000, 0.3)]}
    text = markdown(data)
    assert table_row(text, "- parse logfmt, in process")[1:5] == ["100,000", "parse stage, JSON through the C scan",
                                                                  "1,000,000", "0.10"]
    assert table_row(text, "- file tailer, multiline java, in process")[1:5] == [
        "120,000", "file tailer, plain (same file)", "200,000", "0.60"]
    data["parsers"]["rows"] += [row("worker, JSON lines", 150_000, 0.6),
                                {**row("worker, logfmt lines", 90_000, 0.9), "target_ratio": 0.5},
                                {**row("worker, grok nginx lines", 60_000, 1.2), "target_ratio": 0.5},
                                row("collector, plain", 250_000, 0.36),
                                {**row("collector, multiline java", 210_000, 0.4), "target_ratio": 0.8}]
    text = markdown(data)
    assert table_row(text, "worker, logfmt lines (target >= 0.50x: met)")[1:5] == [
        "90,000", "the same worker on JSON lines, same run", "150,000", "0.60"]
    assert table_row(text, "worker, grok nginx lines (target >= 0.50x: missed)")[4] == "0.40"
    assert table_row(text, "collector, multiline java (target >= 0.80x: met)")[4] == "0.84"
    del data["parsers"]
    assert table_row(markdown(data), "text parsers and multiline")[1] == "failed: no result (benchmark not run)"
