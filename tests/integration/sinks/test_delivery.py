"""Effectively once into every sink: a worker killed with SIGKILL mid-drain, a sink down for 20 s,
and documents a sink rejects. Real servers: noida-db (Kafka + Elasticsearch API), etcd, moto (S3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from core.models import decode_dead_letters
from tests.support.kafka import read_topic
from tests.support.polling import wait_for
from tests.support.sink_stack import SINKS, Stack, assert_exactly_once, doc, feed, stack, wait_all
from tests.support.worker_harness import WorkerHarness

__all__ = ["stack"]  # the fixture, imported so pytest finds it here


@pytest.mark.parametrize("total", [pytest.param(50_000, marks=pytest.mark.starts_first),
                                   pytest.param(200_000, marks=pytest.mark.slow)])
async def test_worker_killed_while_draining_every_line_once_everywhere(
    stack: Stack, make_worker: Callable[..., WorkerHarness], total: int
) -> None:
    worker = await make_worker(stack.env(), sinks=SINKS).start()
    await feed(worker, total)
    await wait_for(lambda: len(worker.sink_documents()) >= total // 4, timeout=120,
                   what=f"a quarter of {total} lines in the file sink before the kill")
    worker.stop(kill=True)
    await worker.start()
    counts = await wait_all(stack, worker, total, timeout=400)
    assert_exactly_once(counts, total)


async def test_sink_outage_backs_up_in_kafka_then_drains(
    stack: Stack, make_worker: Callable[..., WorkerHarness]
) -> None:
    """etcd and the Elasticsearch server are down for 20 s under a steady load; S3 stays up
    (moto keeps nothing across a restart, so an S3 outage would test moto, not us)."""
    worker = await make_worker(stack.env(), sinks=SINKS).start()
    await feed(worker, 5_000)
    await wait_all(stack, worker, 5_000, timeout=120)
    stack.etcd.stop()
    stack.broker.stop()  # noida-db serving the Elasticsearch API: SIGTERM keeps its data
    for step in range(10):
        await feed(worker, 1000, start=5_000 + step * 1000)

    def breakers_tripped() -> bool:  # open, or half-open while probing the dead server
        text = worker.get("/metrics")[1].decode()
        return all(any(f'logweave_sink_breaker_state{{sink="{sink}"}} {state}' in text for state in ("1.0", "2.0"))
                   for sink in ("etcd", "elasticsearch"))

    await wait_for(breakers_tripped, timeout=120, what="the etcd and Elasticsearch breakers to open")
    # the file sink kept going meanwhile
    await wait_for(lambda: len(worker.sink_documents()) == 15_000, timeout=120, what="15,000 lines in the file sink")
    stack.etcd.start()
    stack.broker.start(timeout=90, log_path=stack.workdir / "noida.log")  # reloads what it saved
    counts = await wait_all(stack, worker, 15_000, timeout=180)
    assert_exactly_once(counts, 15_000)

    def recovered() -> bool:
        text = worker.get("/metrics")[1].decode()
        return all(f'logweave_sink_breaker_state{{sink="{sink}"}} 0.0' in text
                   and f'logweave_consumer_lag{{partition="0",topic="sink.{sink}"}} 0.0' in text
                   for sink in ("etcd", "elasticsearch"))

    await wait_for(recovered, timeout=60, what="breakers closed and no lag on the etcd and Elasticsearch topics")


async def test_rejected_documents_are_dead_lettered_and_the_drain_goes_on(
    stack: Stack, make_worker: Callable[..., WorkerHarness]
) -> None:
    worker = await make_worker(stack.env(), sinks=("elasticsearch",)).start()
    await worker.feed([doc(0), {**doc(1), "n": {"not": "a number"}}, doc(2)])
    await worker.feed([doc(3)], stream="later")

    async def dead_letters() -> list[dict[str, Any]]:
        return [d for _, _, _, v in await read_topic(worker.broker.bootstrap, "logs.deadletter")
                for d in decode_dead_letters(v)]

    dead = await wait_for(dead_letters, timeout=60, what="a sink dead letter")
    assert [(d["reason"], orjson.loads(d["line"])["n"]) for d in dead] == [("index_rejected", {"not": "a number"})], (
        dead
    )
    assert dead[0]["stage"] == "sink:elasticsearch"
    counts = await wait_all(stack, worker, 3, timeout=60)
    assert set(counts["elasticsearch"]) == {0, 2, 3}
