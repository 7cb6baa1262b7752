"""How long a broker may hold the worker's fetch: `kafka.fetch_max_wait`, not faust's fixed 1.5 s.

A Kafka broker holds a fetch that has nothing to return until data arrives on one of the partitions
it names, or `fetch.max.wait.ms` passes. aiokafka leaves out of its next fetch every partition whose
records it still buffers, and sends no second fetch to a broker while one is held there. So a record
that lands on such a partition just after the fetch went out waits until the held fetch returns, and
on a slow topic nothing else returns it early: faust builds the worker's consumer with
`fetch_max_wait_ms=1500`. On Tansu (a Kafka-protocol broker that holds fetches as Kafka does), the
live 200 pods x 20 lines/s row took p50 2.25 s and p99 2.79 s from a line's write to the sink file
(200 x 50: 2.27 and 2.88 s); with 100 ms, 0.48 and 0.77 s, as on the embedded broker, which answers
every fetch at once and so never showed it.

`hold_fetches_at_most` makes faust's worker consumer use `kafka.fetch_max_wait` (default 100 ms)
instead. A shorter wait bounds that delay per hop; an idle worker then sends about one empty fetch per
wait per broker.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_ORIGINAL = "_logweave_original_create_worker_consumer"
_WAIT_MS = "_logweave_fetch_max_wait_ms"


def fetch_wait_ms(seconds: float) -> int:
    """`kafka.fetch_max_wait` as the client's `fetch_max_wait_ms` (at least 1)."""
    return max(1, round(seconds * 1000))


def hold_fetches_at_most(seconds: float) -> None:
    """Build faust's worker consumers with `fetch_max_wait_ms` = `seconds` (the last call wins)."""
    setattr(AIOKafkaConsumerThread, _WAIT_MS, fetch_wait_ms(seconds))
    if hasattr(AIOKafkaConsumerThread, _ORIGINAL):
        return
    original = AIOKafkaConsumerThread._create_worker_consumer
    setattr(AIOKafkaConsumerThread, _ORIGINAL, original)

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        # aiokafka hands this to its fetcher when the consumer starts, which is after this
        consumer._fetch_max_wait_ms = getattr(AIOKafkaConsumerThread, _WAIT_MS)
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
