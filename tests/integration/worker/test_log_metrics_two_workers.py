"""Metrics from logs on two real workers: the rules arrive live through `config.rules`, each line is
counted by the one worker grouping its partition, and the two workers' /metrics add up to exactly the
lines fed, a replayed chunk included (its lines are not counted again).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from commands.broker import EmbeddedBroker
from core.rules import RulesDocument
from kafka_io.rules_topic import publish_rules
from tests.support.log_metric_traffic import RULES, samples, summed, traffic
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness, wait_each_groups

SECOND = 1_000_000_000


async def test_two_workers_count_each_line_once_and_sum_to_what_was_fed(broker: EmbeddedBroker,
                                                                       tmp_path: Path) -> None:
    workers = [WorkerHarness(broker, tmp_path / name, {"LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / name / "data"),
                                                       "LOGWEAVE_TRACES__GAP": "1h",
                                                       "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"})
               for name in ("a", "b")]
    for worker in workers:
        worker.workdir.mkdir()
    try:
        for worker in workers:  # launched together: one group join, partitions split between them
            await worker.launch()
        for worker in workers:
            await worker.ready()
        await wait_each_groups(workers)
        document = RulesDocument(version="metrics-1", log_metrics={"rules": RULES})
        await publish_rules(workers[0].settings, document.encode(time.time_ns() + 2 * SECOND))
        await wait_for(lambda: all(b'logweave_rules_version_info{version="metrics-1"} 1.0' in w.get("/metrics")[1]
                                   for w in workers), timeout=60, what="both workers running the metric rules")

        chunks, expected = traffic(streams=16, per_stream=40, time_text=time.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        feeder = workers[0]
        await asyncio.gather(*[feeder.feed(chunk.docs, stream=chunk.stream, source=chunk.source) for chunk in chunks])
        replayed = chunks[3]  # as after a collector restart: the same positions again
        await feeder.feed(replayed.docs, stream=replayed.stream, source=replayed.source, resend_from=0)
        lines = sum(len(chunk.docs) for chunk in chunks)
        await wait_for(lambda: len([d for w in workers for d in w.sink_documents()]) >= lines, timeout=90,
                       what=f"{lines} documents in the file sinks")
        await feeder.wait_until_quiet()

        texts = [w.get("/metrics")[1].decode() for w in workers]
        got = summed(texts)
        assert got.errors == expected.errors
        assert (got.observed, got.skipped) == (expected.observed, expected.skipped)
        assert abs(got.total_ms - expected.total_ms) < 1e-6
        grouped = [sum(v for name, labels, v in samples(t) if name == "logweave_lines_total"
                       and labels["stage"] == "grouped") for t in texts]
        assert all(count > 0 for count in grouped), f"one worker grouped nothing, so two were not shown: {grouped}"
        assert sum(grouped) == lines + len(replayed.docs)  # the replay reached the group stage, and was not counted
        for text in texts:  # no per-process label: the sum over workers is the total
            labelled = {frozenset(labels) for name, labels, _ in samples(text) if name.startswith("logweave_log_")}
            assert labelled <= {frozenset({"service", "namespace"}), frozenset({"service"}),
                                frozenset({"service", "le"}), frozenset({"metric"}), frozenset({"metric", "reason"})}
    finally:
        for worker in workers:
            await worker.close()
