"""Metrics from logs on two real workers: the rules arrive live through `config.rules`, each line is
counted by the one worker grouping its partition, and the two workers' /metrics add up to exactly the
lines fed, a replayed chunk included (its lines are not counted again). A worker joining while the
first one's table updates wait for their persist (the revoke drops them, the next owner counts their
lines) leaves the sums exact too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker
from core.rules import RulesDocument
from kafka_io.rules_topic import publish_rules
from tests.integration.worker.test_grouping import NO_IDLE_CLOSE
from tests.support.log_metric_traffic import RULES, grouped_lines, samples, summed, traffic
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness, dropped_unpersisted, join_until_a_revoke_drops, wait_each_groups

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
        grouped = [grouped_lines(t) for t in texts]
        assert all(count > 0 for count in grouped), f"one worker grouped nothing, so two were not shown: {grouped}"
        assert sum(grouped) == lines + len(replayed.docs)  # the replay reached the group stage, and was not counted
        for text in texts:  # no per-process label: the sum over workers is the total
            labelled = {frozenset(labels) for name, labels, _ in samples(text) if name.startswith("logweave_log_")}
            assert labelled <= {frozenset({"service", "namespace"}), frozenset({"service"}),
                                frozenset({"service", "le"}), frozenset({"metric"}), frozenset({"metric", "reason"})}
    finally:
        for worker in workers:
            await worker.close()


async def test_a_worker_joining_while_lines_wait_for_their_persist_keeps_the_sums_exact(broker: EmbeddedBroker,
                                                                                      tmp_path: Path) -> None:
    """A rebalance drops the table updates not yet persisted (their input is read again by the next owner):
    the lines of those updates must not stay counted by the old owner. Worker a groups alone with its
    persists held back (table_persist_interval 5s) while chunks keep coming; b joins meanwhile, so the
    revoke drops updates (a's log says so; if b's revoke found nothing waiting, c and then d join:
    join_until_a_revoke_drops). Summed over the workers, each line is counted exactly once."""
    rules_env = {"LOGWEAVE_LOG_METRICS__RULES": orjson.dumps(RULES).decode(),
                 "LOGWEAVE_WORKER__TABLE_PERSIST_INTERVAL": "5s", **NO_IDLE_CLOSE}
    workers = [WorkerHarness(broker, tmp_path / name, {"LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / name / "data"),
                                                       **rules_env})
               for name in ("a", "b", "c", "d")]
    for worker in workers:
        worker.workdir.mkdir()
    first, *joiners = workers
    # 40 s of chunks at one every 50 ms, enough for every join on a loaded machine; the rest goes at once
    chunks, expected = traffic(streams=800, per_stream=3, time_text=time.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    settled = asyncio.Event()

    async def feed_until_settled() -> None:
        for at, chunk in enumerate(chunks):  # one chunk every 50 ms while workers join, the rest at once
            await first.feed(chunk.docs, stream=chunk.stream, source=chunk.source)
            if settled.is_set():
                await asyncio.gather(*[first.feed(c.docs, stream=c.stream, source=c.source) for c in chunks[at + 1:]])
                return
            await asyncio.sleep(0.05)

    try:
        await first.start()
        feeding = asyncio.create_task(feed_until_settled())
        await wait_for(lambda: grouped_lines(first.get("/metrics")[1].decode()) >= 30, timeout=60,
                       what="the first worker grouping lines")
        started = await join_until_a_revoke_drops(first, joiners)
        settled.set()
        await feeding
        await first.wait_until_quiet()
        assert dropped_unpersisted(first), \
            f"none of {len(joiners)} joins found an update waiting for its persist: nothing was tested"
        got = summed([w.get("/metrics")[1].decode() for w in started])
        assert (got.errors, got.observed, got.skipped) == (expected.errors, expected.observed, expected.skipped)
    finally:
        for worker in workers:
            await worker.close()


async def test_a_worker_killed_before_its_persist_counts_each_line_once_after_the_restart(broker: EmbeddedBroker,
                                                                                        tmp_path: Path) -> None:
    """A worker killed (-9) right after grouping every line, its updates waiting for their persist
    (table_persist_interval 5s): what it had exposed (scraped just before the kill) plus what the restarted
    worker counts is each line exactly once, none lost with the dead process and none counted twice. (Counted
    at once, the dead process showed every line and the restarted one counted them all again.)"""
    worker = WorkerHarness(broker, tmp_path / "w", {"LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / "w" / "data"),
                                                    "LOGWEAVE_LOG_METRICS__RULES": orjson.dumps(RULES).decode(),
                                                    "LOGWEAVE_WORKER__TABLE_PERSIST_INTERVAL": "5s", **NO_IDLE_CLOSE})
    worker.workdir.mkdir()
    chunks, expected = traffic(streams=8, per_stream=30, time_text=time.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    lines = sum(len(chunk.docs) for chunk in chunks)
    try:
        await worker.start()
        await asyncio.gather(*[worker.feed(c.docs, stream=c.stream, source=c.source) for c in chunks])
        await wait_for(lambda: grouped_lines(worker.get("/metrics")[1].decode()) == lines, timeout=60,
                       what=f"the worker grouping all {lines} lines")
        before = summed([worker.get("/metrics")[1].decode()])
        worker.stop(kill=True)
        await worker.start()
        await worker.wait_until_quiet()
        await wait_for(lambda: summed([worker.get("/metrics")[1].decode()]).observed + before.observed
                       >= expected.observed, timeout=60, what="the restarted worker counting the lines again")
        after = summed([worker.get("/metrics")[1].decode()])
        assert (before.errors + after.errors, before.observed + after.observed, before.skipped + after.skipped) == (
            expected.errors, expected.observed, expected.skipped)
    finally:
        await worker.close()
