"""TraceWindowTable: trace state in RocksDB with one changelog record per chunk, gated on acks.

Keys stay trace ids, so lookups by id are cheap. Bookkeeping keys start with `\\x00` and sort before
every trace id (trace ids are printable). When traces are due is derived data, kept in memory per
partition (tables/deadline_index.py) and rebuilt from the stored traces after every rebalance, so
traces restored from the changelog still close, which faust's `on_window_close` never does.

Writes are staged in memory and made durable (RocksDB + changelog) only once the lines they
forwarded are acknowledged by Kafka: the store never claims a line was applied while its output
could still be lost, so a crash re-processes the chunk and the dedupe positions stay truthful.
A write may add keys computed from its acked outputs (`finalize`): closes record how far their
summaries reached in `traces.closed` (CLOSED_UPTO_KEY), so after a crash the summaries sent but
not yet recorded are found there and not sent again (agents/closed_tail.py).

Persisting is paced (`persist_interval`, worker.table_persist_interval): the updates whose outputs
are acked wait up to that long and go out together, as one RocksDB write batch and one changelog
record holding each key once (the latest value). A live node applies a few lines per stream many
times a second, and every cycle rewrote the same stream marks and open traces and paid a changelog
record: coalescing cuts the keys written and the records sent. Nothing is persisted before its
outputs are acked, and inputs are acked only after the persist that holds their updates, so a
crash in between re-processes those inputs exactly as it did when every cycle persisted at once
(the window is longer, the outcome the same: marks not stored, lines applied again, sinks idempotent).

Only the partitions' owner may write their changelog, and ownership ends when a rebalance begins: by
the time the new assignment arrives, another worker may have restored the partition from the
changelog and be writing it. A late write from the old owner lands after that restore, and whoever
restores the partition next (a standby, the replacement of a killed worker) gets each key from
whichever writer wrote it last: trace states of one history beside stream marks of the other, so
summaries counted 3 or 7 of a trace's 5 lines (tests/e2e/test_scale_out.py; the embedded broker
even completed a generation before the old members had heard of it). So a revoke *fences* the
table (`fence`, called by the App before faust's own revoke handling): everything not yet persisted
is dropped, and until the next assignment (`on_rebalance`) nothing is staged, persisted or acked.
Their inputs stay unacked and are read again from the committed offsets by whoever owns them next,
as after a crash. A persist the consumer thread's rebalance overtakes before the fence is up waits
(`rebalance_unhandled`). What remains is the owner kicked out of its group without hearing of it
(a missed session timeout) until its next heartbeat: a window of `kafka.heartbeat_interval`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import rocksdict
from faust.types import EventT

from core.codec import decompress
from core.metrics import TABLE_KEYS_PERSISTED, TABLE_PERSISTS
from tables import changelog_frames
from tables.deadline_index import DeadlineIndex
from tables.read_cache import ReadCache

log = logging.getLogger(__name__)

CHANGELOG_KEY = b"\x00batch"
CLOCK_KEY = b"\x00clock"
HELD_KEY = b"\x00held"
CLOSED_UPTO_KEY = b"\x00closed_upto"  # traces.closed offset after the last summary whose close is stored


DEFAULT_READ_CACHE_BYTES = 32 * 1024 * 1024  # worker.table_read_cache sets it (app/trace_tables.py)

# A persist waits for at most this many bytes of updates (worker.table_persist_bytes, capped at half a
# message by app/trace_tables.py): at high rates the partitions' persists stay small and spread out
# instead of holding the event loop for all of an interval's updates at once.
DEFAULT_PERSIST_BYTES = 64 * 1024
_FRAME_BYTES = 8  # a changelog frame's key and value lengths (tables/changelog_frames.py)

FIRST_TRACE_KEY = b"\x01"  # bookkeeping keys (`\x00...`) sort below it, trace ids above


Finalize = Callable[[], dict[bytes, bytes | None]]


@dataclass(slots=True)
class _PendingCommit:
    updates: dict[bytes, bytes | None]
    remaining: int
    failed: bool = False
    finalize: Finalize | None = None
    persisted: list[Callable[[], object]] = field(default_factory=list)


@dataclass(slots=True)
class _Ready:
    """Updates of a partition whose outputs are all acked, merged in order, waiting for the next persist."""

    updates: dict[bytes, bytes | None] = field(default_factory=dict)
    size: int = 0  # bytes of the changelog record the merged updates make (before compression)
    persisted: list[Callable[[], object]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class TraceWindowTable(faust.Table):  # type: ignore[misc,type-arg]
    """A faust Table whose writes go through `commit_when_acked`, never per-key `__setitem__`."""

    # Every changelog record has the same key (it carries many trace keys), so the topic must
    # never be compacted: it is a delete-policy topic with a retention (traces.changelog_retention).
    _changelog_compacting = False
    _changelog_deleting = True

    persist_interval = 0.0  # seconds acked updates may wait to be persisted together; 0: at once
    persist_bytes = DEFAULT_PERSIST_BYTES  # persist sooner once the waiting updates reach this size

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staged: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        self._pending: dict[int, deque[_PendingCommit]] = defaultdict(deque)
        self._ready: dict[int, _Ready] = {}
        self.compress: Callable[[bytes], bytes] = lambda data: data
        self.deadline_indexes: dict[int, DeadlineIndex] = {}  # filled by the group stage, per partition
        self.tail_checked: set[int] = set()  # partitions whose traces.closed tail was read since a rebalance
        self.cache = ReadCache(DEFAULT_READ_CACHE_BYTES)  # what RocksDB holds for recent keys (tables/read_cache.py)
        self.fenced = False  # a rebalance began: nothing is staged, persisted or acked until the assignment
        self.fence_listeners: list[Callable[[], object]] = []  # told at each fence (the group stage's batch)
        # True while the consumer has begun a rebalance that `fence` has not handled yet (set by the App)
        self.rebalance_unhandled: Callable[[], bool] = lambda: False

    # -- reads -------------------------------------------------------------------------------
    def db(self, partition: int) -> Any:
        return self.data._db_for_partition(partition)  # type: ignore[attr-defined]

    def read(self, partition: int, key: bytes) -> bytes | None:
        staged = self._staged.get(partition)
        if staged is not None and key in staged:
            return staged[key]
        cached = self.cache.values(partition)
        if key in cached:
            return cached[key]
        value: bytes | None = self.db(partition).get(key)
        self.cache.remember(partition, key, value)
        return value

    def read_closing(self, partition: int, keys: list[bytes]) -> list[bytes | None]:
        """`read` of many keys about to be deleted (closing traces): the misses are fetched with one
        RocksDB multi-get, and not remembered in the read cache, as their deletes follow (a burst of
        closes remembered would fill the cache and clear it)."""
        staged = self._staged.get(partition) or {}
        cached = self.cache.values(partition)
        values: list[bytes | None] = []
        missing: list[int] = []
        for at, key in enumerate(keys):
            if key in staged:
                values.append(staged[key])
            elif key in cached:
                values.append(cached[key])
            else:
                values.append(None)
                missing.append(at)
        if missing:
            found = self.db(partition).get([keys[at] for at in missing])
            for at, value in zip(missing, found, strict=True):
                values[at] = value
        return values

    def lookup(self, key: bytes) -> bytes | None:
        """Find `key` in any local partition (web views, outside stream processing)."""
        for partition in list(self.data._dbs):  # type: ignore[attr-defined]
            value = self.read(partition, key)
            if value is not None:
                return value
        return None

    def scan(self, partition: int, prefix: bytes, upto: bytes | None = None) -> Iterator[bytes]:
        """Committed keys starting with `prefix`, in order, below `upto` when given."""
        for key in self.db(partition).keys(from_key=prefix):
            if not key.startswith(prefix) or (upto is not None and key >= upto):
                return
            yield key

    def traces(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every stored trace of `partition` as (key, value), staged writes included."""
        staged = self._staged.get(partition, {})
        for key, value in self.db(partition).items(from_key=FIRST_TRACE_KEY):
            if b"\x00" not in key and key not in staged:  # faust keeps its offset under `__faust\x00offset__`
                yield key, value
        for key, staged_value in list(staged.items()):
            if staged_value is not None and key >= FIRST_TRACE_KEY:
                yield key, staged_value

    # -- writes ------------------------------------------------------------------------------
    def commit_when_acked(self, partition: int, updates: dict[bytes, bytes | None],
                          outputs: Sequence[Any], finalize: Finalize | None = None) -> None:
        """Stage `updates` now (reads see them) and persist them, in order, once every output is acked;
        `finalize()` then adds keys that depend on the acks (it is not staged)."""
        if not updates:
            return
        if self.fenced:  # applied after the revoke began: its input is read again by the next owner
            log.debug("partition %d: an update after the revoke began is dropped", partition)
            return
        self._staged[partition].update(updates)
        entry = _PendingCommit(updates, sum(1 for fut in outputs if not fut.done()), finalize=finalize)
        queue = self._pending[partition]
        queue.append(entry)
        for fut in outputs:
            if not fut.done():
                fut.add_done_callback(lambda fut, e=entry: self._output_done(partition, e, fut))
        self._drain(partition)

    def after_persisted(self, partition: int, callback: Callable[[], object]) -> None:
        """Call `callback` once every update staged so far for `partition` is persisted (now if none
        is pending): the group agent acks its input chunk there, so Kafka never commits an offset
        past a chunk whose table update could still be lost. Fenced: never (the update was dropped;
        a callback with a `dropped` method is told instead)."""
        if self.fenced:
            _tell_dropped(callback)
            return
        queue = self._pending.get(partition)
        ready = self._ready.get(partition)
        if queue:
            queue[-1].persisted.append(callback)
        elif ready is not None:
            ready.persisted.append(callback)
        else:
            callback()

    def _output_done(self, partition: int, entry: _PendingCommit, fut: Any) -> None:
        entry.remaining -= 1
        if fut.cancelled() or fut.exception() is not None:
            entry.failed = True
        self._drain(partition)

    def _drain(self, partition: int) -> None:
        queue = self._pending[partition]
        while queue and queue[0].remaining == 0:
            head = queue[0]
            if head.failed:
                log.error("outputs of a chunk were not acknowledged; table updates of partition %d stay "
                          "unpersisted (their chunks are re-processed after a restart)", partition)
                return
            queue.popleft()
            if head.finalize is not None:
                head.updates.update(head.finalize())
            self._make_ready(partition, head)

    def _make_ready(self, partition: int, head: _PendingCommit) -> None:
        """Merge an acked update into the partition's next persist; persist now when pacing is off or
        the merged updates reached `persist_bytes`, else within `persist_interval`."""
        ready = self._ready.get(partition)
        if ready is None:
            ready = self._ready[partition] = _Ready()
        merged, size = ready.updates, ready.size
        for key, value in head.updates.items():  # the size of the record the persist will write
            if key not in merged:
                size += len(key) + _FRAME_BYTES
            else:
                old = merged[key]
                if old is not None:
                    size -= len(old)
            if value is not None:
                size += len(value)
            merged[key] = value
        ready.size = size
        ready.persisted.extend(head.persisted)
        if self.persist_interval <= 0 or ready.size >= self.persist_bytes:
            self.flush_ready(partition)
        elif ready.timer is None:
            ready.timer = asyncio.get_running_loop().call_later(self.persist_interval, self.flush_ready, partition)

    def flush_ready(self, partition: int) -> None:
        """Persist the partition's acked updates now, then ack the inputs that waited for them."""
        if self.rebalance_unhandled():  # ownership is ending: wait for `fence` (which drops them)
            ready = self._ready.get(partition)
            if ready is not None:
                if ready.timer is not None:
                    ready.timer.cancel()
                ready.timer = asyncio.get_running_loop().call_later(
                    max(self.persist_interval, 0.01), self.flush_ready, partition)
            return
        ready = self._ready.pop(partition, None)
        if ready is None:
            return
        if ready.timer is not None:
            ready.timer.cancel()
        self._persist(partition, ready.updates)
        for callback in ready.persisted:
            callback()

    def flush_all_ready(self) -> None:
        for partition in list(self._ready):
            self.flush_ready(partition)

    def _persist(self, partition: int, updates: dict[bytes, bytes | None]) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in updates.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.db(partition).write(batch)
        TABLE_PERSISTS.inc()
        TABLE_KEYS_PERSISTED.inc(len(updates))
        self.cache.remember_all(partition, updates)
        self.send_changelog(partition, CHANGELOG_KEY, self.compress(changelog_frames.pack(updates)),
                            key_serializer="raw", value_serializer="raw")
        staged = self._staged.get(partition)
        if staged is not None:
            for key, value in updates.items():
                if key in staged and staged[key] is value:
                    del staged[key]

    # -- recovery ----------------------------------------------------------------------------
    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        """Expand multi-key changelog records into RocksDB writes (recovery and standbys)."""
        batches: dict[int, Any] = defaultdict(lambda: rocksdict.WriteBatch(raw_mode=True))
        offsets: dict[Any, int] = {}
        for event in batch:
            message = event.message
            offsets[message.tp] = max(message.offset, offsets.get(message.tp, -1))
            if message.value is None or message.key != CHANGELOG_KEY:
                continue
            target = batches[message.partition]
            for key, value in changelog_frames.unpack(decompress(message.value)):
                if value is None:
                    target.delete(key)
                else:
                    target.put(key, value)
        self.cache.forget(batches)  # written past `_persist`: what the cache held may be stale
        for partition in batches:  # and what was derived from the store: rebuilt from it when next needed
            self.deadline_indexes.pop(partition, None)
            self.tail_checked.discard(partition)
        for partition, write_batch in batches.items():
            self.db(partition).write(write_batch)
        for tp, offset in offsets.items():
            self.data.set_persisted_offset(tp, offset)

    def fence(self, partitions: Iterable[int]) -> None:
        """A rebalance began and `partitions` are revoked: drop their updates not yet persisted (their
        inputs stay unacked; an `after_persisted` callback with a `dropped` method is told) and stage,
        persist and ack nothing until the next assignment."""
        self.fenced = True
        partitions = set(partitions)
        dropped = partitions & self.partitions_unpersisted()
        for partition in dropped:  # their inputs are let go unacked (a callback may say how: `dropped`)
            waiting = [callback for entry in self._pending.get(partition, ()) for callback in entry.persisted]
            ready = self._ready.get(partition)
            for callback in waiting + (ready.persisted if ready is not None else []):
                _tell_dropped(callback)
        self.forget_staged(partitions)
        for listener in self.fence_listeners:
            listener()
        if dropped:
            log.info("rebalance: updates of partitions %s not yet persisted are dropped (their input is read "
                     "again from the committed offsets)", ",".join(map(str, sorted(dropped))))

    def partitions_unpersisted(self) -> set[int]:
        """Partitions holding updates not yet persisted (staged, waiting for acks or for their persist)."""
        return {p for p, staged in self._staged.items() if staged} | {p for p, queue in self._pending.items()
                                                                      if queue} | set(self._ready)

    def unfence(self) -> None:
        self.fenced = False

    def forget_staged(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._staged.pop(partition, None)
            self._pending.pop(partition, None)
            ready = self._ready.pop(partition, None)
            if ready is not None and ready.timer is not None:
                ready.timer.cancel()
            self.cache.forget([partition])
            self.deadline_indexes.pop(partition, None)
            self.tail_checked.discard(partition)

    async def on_stop(self) -> None:
        """A clean stop stores the acked updates still waiting for their persist (before the store closes)."""
        try:
            self.flush_all_ready()
        except Exception:  # their inputs stay unacked: re-processed after the restart, nothing lost
            log.exception("persisting the trace table's acked updates at stop failed")
        await super().on_stop()

    async def on_rebalance(self, assigned: set[Any], revoked: set[Any], newly_assigned: set[Any],
                           generation_id: int = 0) -> None:
        """Any partition may have changed hands or roles: rebuild deadline indexes from the store. The
        fence of the revoke (which dropped what was not persisted) is lifted: the stream delivers only
        records of the new generation, of partitions this worker now owns."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        self.deadline_indexes.clear()
        self.tail_checked.clear()
        self.cache.clear()  # roles may have changed (standby <-> active): start from the store
        self.forget_staged({tp.partition for tp in revoked})
        self.unfence()


def _tell_dropped(callback: Callable[[], object]) -> None:
    """An `after_persisted` callback whose update a fence dropped: its `dropped` method, if it has one,
    lets its inputs go unacked (agents/group.py, InputAcks)."""
    dropped = getattr(callback, "dropped", None)
    if dropped is not None:
        dropped()
