"""The whole pipeline as a user runs it: broker, `faust -A app worker`, `logweave collect files`.

20,000 CRI lines across 50 pods and 2,000 traces, with malformed lines, written partly before and
partly while the collector runs. Checked by reading the file sink, logs.deadletter and
traces.closed back: every valid line exactly once with its fields intact, every malformed line
dead-lettered with its reason, trace summaries exact. Traces close by stream time once every line
is delivered (a line far ahead in event time on every partition), under an idle gap of an hour: a
loaded machine's pauses (collector or worker) cannot close a trace before its last line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from commands.broker import EmbeddedBroker, free_port
from commands.demo import cri_line, rfc3339_nano
from core.models import decode_closed_traces, decode_dead_letters
from core.settings import load_settings
from kafka_io.topic_admin import prepare_worker_topics
from tests.support.kafka import read_topic
from tests.support.logdata import BASE_NS, pod_log_paths, write_dataset
from tests.support.polling import wait_for
from tests.support.processes import file_collector, wait_http_ok_in_thread, worker
from tests.support.quiescence import wait_until_quiet


def sink_documents(out: Path) -> list[dict[str, object]]:
    docs = []
    for segment in sorted(out.rglob("*.ndjson")):
        data = segment.read_bytes()  # the worker may be mid-append: whole lines only
        docs.extend(orjson.loads(line) for line in data[:data.rfind(b"\n") + 1].splitlines())
    return docs


@pytest.mark.timeout(300)
async def test_pipeline_end_to_end(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {
        "LOGWEAVE_KAFKA__BROKERS": broker.bootstrap,
        "LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / "worker-data"),
        "LOGWEAVE_SINKS__FILE__DIRECTORY": str(tmp_path / "out"),
        "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "LOGWEAVE_COLLECTOR__METRICS_PORT": "0",
        "LOGWEAVE_TRACES__GAP": "1h",
        "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
        "LOGWEAVE_TRACES__CLOSE_CHECK_INTERVAL": "0.5s",
        "LOGWEAVE_SINKS__BATCH_PERIOD": "0.2s",
    }
    await prepare_worker_topics(load_settings(environ=env))
    pods = tmp_path / "pods"
    data = write_dataset(pods, 10_000, pods=50, traces=2_000)
    web_port = free_port()
    worker_proc = worker(tmp_path, env, web_port).start()
    collector = file_collector(tmp_path, env, [str(pods / "*" / "*" / "*.log")]).start()
    try:
        await wait_http_ok_in_thread(f"http://127.0.0.1:{web_port}/readyz", 60, worker_proc)
        write_dataset(pods, 10_000, pods=50, traces=2_000, data=data, start=10_000)
        expected = len(data.valid)

        def all_written() -> bool:
            assert worker_proc.alive(), worker_proc.log_tail()
            assert collector.alive(), collector.log_tail()
            return len(sink_documents(tmp_path / "out")) >= expected

        await wait_for(all_written, timeout=240, interval=0.5, what=f"{expected} lines in the file sink",
                       last_seen=lambda: len(sink_documents(tmp_path / "out")))
        await wait_until_quiet(broker.bootstrap, "logweave", ["logs.raw", "logs.parsed", "sink.file"])
        docs = sink_documents(tmp_path / "out")
        by_msg = Counter(str(d["msg"]) for d in docs)
        assert len(docs) == expected, f"sink has {len(docs)} lines, expected {expected}"
        assert all(count == 1 for count in by_msg.values())
        for doc in docs:
            meta = doc.pop("logweave")
            assert isinstance(meta, dict)
            assert doc == data.valid[str(doc["msg"])]
            source = meta["source"]
            assert source["kind"] == "file" and source["namespace"] == "e2e"
            assert str(source["pod"]).startswith("pod-") and source["container"] == "app"
            assert meta["trace"] == doc["traceId"] and meta["lid"]

        clock_ns = BASE_NS + 3 * 3600 * 1_000_000_000  # past every trace's last line + gap + lateness
        with pod_log_paths(pods, 50)[0].open("a") as log_file:
            for i in range(32):  # their trace ids cover every partition of logs.parsed
                clock_doc = {"time": rfc3339_nano(clock_ns), "traceId": f"clock-{i}"}
                log_file.write(cri_line(clock_ns, orjson.dumps(clock_doc).decode()))

        async def summaries() -> list[dict[str, object]]:
            records = await read_topic(broker.bootstrap, "traces.closed")
            return [s for _, _, _, value in records for s in decode_closed_traces(value)]

        async def every_trace_closed() -> bool:
            return {s["trace"] for s in await summaries()} >= set(data.traces)

        await wait_for(every_trace_closed, timeout=120, interval=1.0, what=f"{len(data.traces)} traces closed")
        await wait_until_quiet(broker.bootstrap, "logweave", ["logs.raw", "logs.parsed", "sink.file"])
        closed: dict[str, dict[str, object]] = {}
        for summary in await summaries():
            assert summary["trace"] not in closed, f"trace {summary['trace']} closed twice"
            closed[str(summary["trace"])] = summary
        assert set(closed) == set(data.traces)
        for trace, times in data.traces.items():
            summary = closed[trace]
            assert summary["count"] == len(times)
            assert (summary["first"], summary["last"]) == (min(times), max(times))

        dead = [item for _, _, _, value in await read_topic(broker.bootstrap, "logs.deadletter")
                for item in decode_dead_letters(value)]
        assert Counter(d["reason"] for d in dead) == Counter(reason for reason, _ in data.malformed)
        assert all(d["src"]["kind"] == "file" and d["sid"] and d["pos"] >= 0 for d in dead)
    finally:
        collector.stop()
        worker_proc.stop()
