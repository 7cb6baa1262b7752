"""Records the consumer took from Kafka in one batch and is still handing to streams, per topic.

Parse and group flush their batch when "nothing waits", and waiting used to mean only the stream's
own queue. faust hands the records of one fetch to the streams one at a time, each through a task
and a turn of the event loop (`Consumer._drain_messages`), so the queue was empty after every record:
a fetch that brought four `logs.parsed` records made four group flushes, four sink records and four
produce requests, and on a node of slow writers (200 pods x 20 lines/s) the group stage flushed 40
times a second with one record each. Counting what the current batch still holds for a stream's
topics lets a stage take the whole fetch first: one flush per fetch, its outputs in one produce
request. A batch ends (`ended`) when faust's `getmany` returns, whether or not it handed every record
(a rebalance stops it midway); a stage's linger still bounds any wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_ATTRIBUTE = "_logweave_fetched_batch"


class FetchedBatch:
    """Per topic: how many records of the batch being handed out are not handed yet."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left: dict[str, int] = {}

    def taken(self, records: Mapping[Any, Sequence[Any]]) -> None:
        """A new batch: `records` maps each TopicPartition to the records about to be handed."""
        left: dict[str, int] = {}
        for tp, items in records.items():
            if items:
                left[tp.topic] = left.get(tp.topic, 0) + len(items)
        self.left = left

    def handed(self, topic: str) -> None:
        """One record of `topic` is being handed to the streams (called before it is)."""
        left = self.left
        count = left.get(topic)
        if count is not None:
            if count > 1:
                left[topic] = count - 1
            else:
                del left[topic]

    def ended(self) -> None:
        """The batch is over: whatever it did not hand is not coming (a rebalance, an inactive partition)."""
        self.left = {}

    def holds(self, topics: Iterable[str]) -> bool:
        """Whether records of any of `topics` are still to be handed from this batch."""
        left = self.left
        return bool(left) and any(topic in left for topic in topics)


def fetched_batch(consumer: Any) -> FetchedBatch:
    """The tracker of `consumer` (faust's Consumer), made on first use."""
    tracker: FetchedBatch | None = getattr(consumer, _ATTRIBUTE, None)
    if tracker is None:
        tracker = FetchedBatch()
        setattr(consumer, _ATTRIBUTE, tracker)
    return tracker
