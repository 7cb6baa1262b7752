"""Taking many input records at once: ack them only after their outputs, and flush on a linger.

faust costs a stage about half a millisecond of CPU per Kafka record it sends, so a stage that
re-chunks (parse by trace partition) gathers the lines of many input records before it produces.
Two rules keep that at-least-once:

- An input record is acked (so its offset may be committed) only once every output made from it
  is acknowledged by Kafka, and records are acked in the order they were taken (`InOrderAcks`).
  faust's own `take` acks a batch as soon as the loop body returns, whatever became of the sends.
- The stage's progress (agents/backlog.py) advances with the acks, never before: a partition whose
  lines still wait in a batch is not caught up.

`Linger` flushes a batch that waited long enough although no new record came to fill it.
`SendNow` then ends the producer's own linger (`kafka.linger`) once a flush's records are all in
it: they share produce requests, and no hop waits out the linger after its burst is complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from agents.backlog import SourceProgress
from agents.fetched_batch import fetched_batch
from kafka_io.kafka_compat import end_linger

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Taken:
    events: list[Any]
    remaining: int
    failed: bool = False


class InOrderAcks:
    """Acks batches of input events once all their outputs are acked, batch after batch."""

    def __init__(self, stage: str, progress: SourceProgress | None = None) -> None:
        self.stage = stage
        self.progress = progress
        self._pending: deque[_Taken] = deque()
        self._reported = False

    @property
    def pending(self) -> int:
        """Batches taken whose events are not acked yet."""
        return len(self._pending)

    def add(self, events: Sequence[Any], outputs: Sequence[asyncio.Future[Any]]) -> None:
        """`events` were turned into `outputs` (send futures): ack them once every output is acked."""
        if not events:
            return
        taken = _Taken(list(events), sum(1 for fut in outputs if not fut.done()))
        taken.failed = any(fut.done() and not _succeeded(fut) for fut in outputs)
        self._pending.append(taken)
        for fut in outputs:
            if not fut.done():
                fut.add_done_callback(partial(self._output_done, taken))
        self._drain()

    def _output_done(self, taken: _Taken, fut: asyncio.Future[Any]) -> None:
        taken.remaining -= 1
        if not _succeeded(fut):
            taken.failed = True
        self._drain()

    def _drain(self) -> None:
        queue, progress = self._pending, self.progress
        while queue and queue[0].remaining == 0:
            head = queue[0]
            if head.failed:  # never acked: the worker re-reads these records after a restart
                if not self._reported:
                    self._reported = True
                    log.error("%s: outputs of a batch were not acknowledged by Kafka; its input records and "
                              "every later one stay unacked (re-processed after a restart)", self.stage)
                return
            queue.popleft()
            for event in head.events:
                event.ack()
                if progress is not None:
                    message = event.message
                    progress.processed(message.tp, message.offset)


def nothing_waiting(stream: Any) -> Callable[[], bool]:
    """Whether no further record of `stream` is waiting to be read: its channel's queue is empty and
    the consumer's current batch holds no more records of its topics (agents/fetched_batch.py)."""
    channel = stream.channel
    queue = getattr(channel, "queue", None)
    topics = tuple(getattr(channel, "topics", None) or ())
    app = getattr(stream, "app", None)
    if queue is None:
        return lambda: True
    empty: Callable[[], bool] = queue.empty
    if not topics or app is None:
        return empty  # a channel no consumer feeds
    fetched = fetched_batch(app.consumer)
    return lambda: empty() and not fetched.holds(topics)


def _succeeded(fut: asyncio.Future[Any]) -> bool:
    return not fut.cancelled() and fut.exception() is None


@dataclass
class Linger:
    """Calls `flush` once the oldest unflushed input waited `seconds`, when nothing else flushed it.

    The stage calls `started()` when a batch gets its first input and `flushed()` when it sends it;
    one background task (`run`) sleeps until the deadline of the batch in progress.
    """

    seconds: float
    flush: Callable[[], Awaitable[None]]
    _since: float | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def started(self) -> None:
        if self._since is None:
            self._since = time.monotonic()
            self._wake.set()

    def flushed(self) -> None:
        self._since = None

    def due(self) -> bool:
        return self._since is not None and time.monotonic() - self._since >= self.seconds

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._since is not None:
                delay = self._since + self.seconds - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                try:
                    await self.flush()
                except Exception:  # its records stay unacked: re-read after a restart, never lost
                    log.exception("flushing a lingering batch failed")
                    self.flushed()


class SendNow:
    """Ends the app producer's linger once a stage's burst of sends is in it (`end_linger`).

    `now()` after sends that were awaited (they are in the producer); `after_buffer()` after
    `send_soon` calls, which faust's buffer task hands to the producer a moment later.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._task: asyncio.Future[None] | None = None
        self._again = False

    def now(self) -> None:
        producer = getattr(self.app.producer, "_producer", None)  # None until the producer started
        if producer is not None:
            end_linger(producer)

    def after_buffer(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # the running task goes round once more for these sends
            return
        self._task = asyncio.ensure_future(self._after_buffer())

    async def _after_buffer(self) -> None:
        buffer = self.app.producer.buffer
        while True:
            self._again = False
            try:
                await buffer.flush()  # until faust's buffer task took every message
            except RuntimeError:  # the producer is stopping: it flushes what it holds itself
                return
            await asyncio.sleep(0)  # the message it took last is appended within its step
            self.now()
            if not self._again:
                return
