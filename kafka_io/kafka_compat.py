"""Keeps idle consumers idle on brokers that answer empty fetches at once, and wakes them for new data.

A Kafka broker holds a fetch until data arrives or `fetch.max.wait.ms` passes; the embedded
broker (noida-db) answers an empty fetch immediately, and aiokafka then re-fetches in a tight loop:
an idle worker burned a whole core. After an empty fetch answered faster than the pause below,
aiokafka's fetcher now waits out the rest of the pause. The pause starts short after data and
doubles with each empty answer up to its cap, so an idle consumer sleeps.

Most records a worker's stages read are written by the same worker a moment before (parse ->
logs.parsed -> group -> sink topics -> drains). Polling for them cost the live 200 pods x 20
lines/s row about five empty fetches per collector linger, each a Python-encoded request over
every assigned partition, and up to a pause of latency per hop. So when this process's producer
has a batch acknowledged on a topic one of its consumers fetches, that consumer's pause ends at
once (`records_landed`), and an ack that came while a fetch was in flight makes the next pause the
shortest. Only a fetcher that is pausing needs its loop woken: an ack otherwise just counts on the
fetcher (`_logweave_landed`), which the fetcher reads after its answer and again once its pause
is set up, so no ack is missed and most acks cost no cross-thread call (the consumer runs in its
own thread: each wake was a self-pipe write, a loop turn and a GIL hand-over). The pause then mostly paces
records written by other processes (collectors, other workers), at most `cap` late. Consumers that
follow slow topics (rules, heartbeats) pause longer (`pace_idle_fetches`).
On a real Kafka an empty answer already took `fetch.max.wait.ms`, so nothing changes there
except that a pausing fetcher is woken sooner.

The producer's `kafka.linger` lets records sent together share a batch and a produce request. A
stage that sends a whole burst at once (parse's flush: one chunk per partition) knows when the
burst is complete: `end_linger` sends what the producer holds at once instead of letting it wait
out the linger, which otherwise added up to `kafka.linger` of latency at every hop.

A group member with no partitions may get a zero-length assignment from SyncGroup: Kafka's
coordinator fills in an empty one for every member the leader's plan leaves out. aiokafka decodes
the assignment as a struct and fails on zero bytes (`unpack requires a buffer of 2 bytes`), which
kills its coordination task; `accept_empty_assignments` makes it read as "no partitions", as the
Java client, librdkafka and kafkajs do.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.producer.message_accumulator import MessageBatch

IDLE_FETCH_PAUSE = 0.1  # seconds: the cap (what records from other processes may wait at most)
FIRST_IDLE_PAUSE = 0.02  # seconds, after a fetch with data or a wake-up
_PATCHED = "_logweave_idle_pause"
_FETCHERS: weakref.WeakSet[Any] = weakref.WeakSet()  # this process's fetchers, each with its loop
_UNREAD_OWN_WRITES: set[str] = set()  # topics whose records this process writes but never reads (never_wake_for)


class IdlePause:
    """How long one fetcher pauses after an answer: nothing after data, then FIRST_IDLE_PAUSE doubling
    with each empty answer up to `cap`; a wake-up (records landed) starts the doubling over."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.next = FIRST_IDLE_PAUSE
        self.fetches = self.empty = 0  # answers seen, and how many were empty (for diagnosis)

    def after(self, has_data: bool) -> float:
        """Seconds to pause after an answer (less the time the answer took)."""
        self.fetches += 1
        if has_data:
            self.next = FIRST_IDLE_PAUSE
            return 0.0
        self.empty += 1
        current = min(self.next, self.cap)
        self.next = current * 2
        return current

    def woken(self) -> None:
        self.next = FIRST_IDLE_PAUSE


def install_idle_fetch_pause(pause: float = IDLE_FETCH_PAUSE) -> None:
    """Patch aiokafka's Fetcher (and the producer's batch acks, for wake-ups) once per process (idempotent)."""
    Fetcher._logweave_default_cap = pause  # type: ignore[attr-defined]
    if getattr(Fetcher, _PATCHED, False):
        return
    original = Fetcher._proc_fetch_request

    async def _proc_fetch_request(self: Any, assignment: Any, node_id: Any, request: Any) -> Any:
        started = time.monotonic()
        _register(self, assignment)
        landed = self._logweave_landed  # acks counted from here on may be missing from this answer
        has_data = await original(self, assignment, node_id, request)
        pause = _pause_of(self)
        seen = self._logweave_landed
        if seen != landed:  # records landed while the fetch was in flight: the shortest pause
            pause.woken()
        remaining = pause.after(has_data) - (time.monotonic() - started)
        if remaining > 0:
            try:
                await _pause(self, remaining, seen)
            except asyncio.CancelledError:  # close() or unassignment, as aiokafka expects
                return False
        return has_data

    original_done = MessageBatch.done

    def done(self: Any, base_offset: Any, *args: Any, **kwargs: Any) -> None:
        original_done(self, base_offset, *args, **kwargs)
        records_landed(self._tp.topic)

    Fetcher._proc_fetch_request = _proc_fetch_request  # type: ignore[method-assign]
    MessageBatch.done = done  # type: ignore[method-assign]
    setattr(Fetcher, _PATCHED, True)


def accept_empty_assignments() -> None:
    """Decode a zero-length consumer-protocol assignment as version 0, no partitions, no user data
    (idempotent; any other bytes decode as before, a malformed non-empty one still fails)."""
    if getattr(ConsumerProtocolMemberAssignment, _PATCHED, False):
        return
    original = ConsumerProtocolMemberAssignment.decode.__func__  # type: ignore[attr-defined]

    def decode(cls: type[ConsumerProtocolMemberAssignment], data: Any) -> ConsumerProtocolMemberAssignment:
        empty = len(data) == 0 if isinstance(data, bytes | bytearray | memoryview) else (
            data.tell() == len(data.getbuffer()))
        if empty:
            return cls(0, [], b"")
        result: ConsumerProtocolMemberAssignment = original(cls, data)
        return result

    ConsumerProtocolMemberAssignment.decode = classmethod(decode)  # type: ignore[method-assign,assignment]
    setattr(ConsumerProtocolMemberAssignment, _PATCHED, True)


def _pause_of(fetcher: Any) -> IdlePause:
    pause: IdlePause | None = getattr(fetcher, "_logweave_pause", None)
    if pause is None:
        pause = fetcher._logweave_pause = IdlePause(getattr(fetcher, "_logweave_default_cap", IDLE_FETCH_PAUSE))
        fetcher._logweave_waiters = set()
        fetcher._logweave_wake_pending = False
        fetcher._logweave_landed = 0  # acks on its topics so far (written by any thread, compared only)
    return pause


def _register(fetcher: Any, assignment: Any) -> None:
    """Note the fetcher's loop and the topics it fetches, for wake-ups (before each fetch: a paused
    partition, like a worker's own changelog after recovery, is assigned but not fetched)."""
    fetcher._logweave_topics = frozenset(tp.topic for tp in assignment.tps if not assignment.state_value(tp).paused)
    if getattr(fetcher, "_logweave_loop", None) is None:
        _pause_of(fetcher)
        fetcher._logweave_loop = asyncio.get_running_loop()
        _FETCHERS.add(fetcher)


async def _pause(fetcher: Any, seconds: float, seen: int) -> None:
    """Sleep `seconds`, or less when `records_landed` wakes the fetcher; not at all when records
    landed since the fetcher read `seen` (`records_landed` counts before it looks for a waiter, and
    the waiter is added here before the count is read again: one of the two sees the other)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    fetcher._logweave_waiters.add(waiter)
    if fetcher._logweave_landed != seen:
        fetcher._logweave_waiters.discard(waiter)
        _pause_of(fetcher).woken()
        return
    timer = loop.call_later(seconds, _resolve, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        fetcher._logweave_waiters.discard(waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def never_wake_for(topic: str) -> None:
    """Records this process writes to `topic` are never read by it: their acks wake no fetcher.

    A worker's trace table changelog: faust assigns its partitions to the consumer (recovery and
    standbys read them) but, once a partition is active, only keeps its records from the stream
    (its own "pause"): aiokafka still counts the topic as fetched, so each persist's changelog
    record woke the fetcher for a request that could not hold it (the partition's first answer stays
    buffered, unread, and keeps it out of every request). 200 pods x 20 lines/s: ~10 persists a
    second, each a cross-thread wake-up and a fetch over every other partition."""
    _UNREAD_OWN_WRITES.add(topic)


def records_landed(topic: str) -> None:
    """Records were acknowledged on `topic`: wake this process's fetchers that fetch it (any thread).

    Each such fetcher counts the ack; only one pausing right now gets a wake-up (one in flight at
    a time). A fetch in flight reads the count after its answer (`_proc_fetch_request`)."""
    if topic in _UNREAD_OWN_WRITES:
        return
    for fetcher in list(_FETCHERS):
        if topic not in fetcher._logweave_topics:
            continue
        fetcher._logweave_landed += 1  # before looking for a waiter (see `_pause`)
        if fetcher._logweave_wake_pending or not fetcher._logweave_waiters:
            continue
        fetcher._logweave_wake_pending = True  # one wake-up in flight per fetcher
        try:
            fetcher._logweave_loop.call_soon_threadsafe(_wake, fetcher)
        except RuntimeError:  # its loop is closed: the consumer stopped
            _FETCHERS.discard(fetcher)


def end_linger(producer: Any) -> None:
    """Send the batches an AIOKafkaProducer holds now, without waiting out their linger.

    Records appended later start new batches; what the batches hold is unchanged, so order and
    acks are too (aiokafka's own flush before a transaction commit does the same)."""
    accumulator = producer._message_accumulator
    for batches in accumulator._batches.values():
        for batch in batches:
            batch._builder.close()
    waiter = accumulator._waiter_future
    if not waiter.done():
        waiter.set_result(None)  # the sender task drains the now-ready batches


def pace_idle_fetches(consumer: Any, cap: float) -> None:
    """Let a started consumer that follows a slow topic (rules, heartbeats) pause up to `cap` seconds."""
    _pause_of(consumer._fetcher).cap = cap


def idle_pause(consumer: Any) -> IdlePause:
    """The pause state of a started consumer's fetcher (its counts show how often it fetched)."""
    return _pause_of(consumer._fetcher)


def _wake(fetcher: Any) -> None:
    """In the fetcher's loop: end its pause; a fetch in flight pauses only FIRST_IDLE_PAUSE if empty."""
    fetcher._logweave_wake_pending = False
    _pause_of(fetcher).woken()
    waiters = fetcher._logweave_waiters
    for waiter in list(waiters):
        _resolve(waiter)
    # gone at once, not when each pause resumes: acks landing meanwhile see no waiter and post no
    # second wake-up (the 200-ack test saw 2 on a busy machine)
    waiters.clear()
