"""What a consumer's current batch still holds per topic, and the "nothing waits" question parse and
group ask before they flush (agents/fetched_batch.py, agents/batching.py). A real worker's fetch is in
tests/integration/worker/test_batched_stages.py and tests/integration/worker/test_fetch_rewind.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from agents.batching import nothing_waiting
from agents.fetched_batch import FetchedBatch, fetched_batch


def batch_of(counts: dict[TP, int]) -> dict[TP, list[object]]:
    return {tp: [object()] * count for tp, count in counts.items()}


def test_counts_per_topic_across_partitions_until_each_record_is_handed() -> None:
    fetched = FetchedBatch()
    fetched.taken(batch_of({TP("raw", 0): 2, TP("raw", 1): 1, TP("parsed", 3): 1, TP("empty", 0): 0}))
    assert fetched.holds(["raw"]) and fetched.holds(["parsed"]) and not fetched.holds(["empty"])
    fetched.handed("raw")
    fetched.handed("parsed")
    assert fetched.holds(["raw"]) and not fetched.holds(["parsed"])
    assert fetched.holds(["parsed", "raw"])
    fetched.handed("raw")
    fetched.handed("raw")
    assert not fetched.holds(["raw"])
    fetched.handed("raw")  # more than the batch held (a record faust re-handed): stays at none
    assert fetched.left == {}


def test_a_batch_that_ends_early_holds_nothing_and_a_new_batch_starts_over() -> None:
    fetched = FetchedBatch()
    fetched.taken(batch_of({TP("raw", 0): 5}))
    fetched.handed("raw")
    fetched.ended()  # a rebalance stopped the handing: the rest is not coming from this batch
    assert not fetched.holds(["raw"])
    fetched.taken(batch_of({TP("raw", 1): 1}))
    assert fetched.left == {"raw": 1}


def test_one_tracker_per_consumer() -> None:
    consumer, other = SimpleNamespace(), SimpleNamespace()
    assert fetched_batch(consumer) is fetched_batch(consumer)
    assert fetched_batch(other) is not fetched_batch(consumer)


async def test_nothing_waits_only_once_the_queue_is_empty_and_the_batch_holds_none_of_the_stream_topics() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    consumer = SimpleNamespace()
    stream = SimpleNamespace(channel=SimpleNamespace(queue=queue, topics=["logs.parsed"]),
                             app=SimpleNamespace(consumer=consumer))
    waiting = nothing_waiting(stream)
    assert waiting()
    fetched_batch(consumer).taken(batch_of({TP("logs.parsed", 0): 1, TP("logs.raw", 2): 3}))
    assert not waiting(), "a record of its topic is still to be handed"
    fetched_batch(consumer).handed("logs.parsed")
    assert waiting(), "only other topics' records are left"
    queue.put_nowait(object())
    assert not waiting()


def test_a_channel_no_consumer_feeds_asks_its_queue_only() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    assert nothing_waiting(SimpleNamespace(channel=SimpleNamespace(queue=queue)))()
    assert nothing_waiting(SimpleNamespace(channel=SimpleNamespace()))()
