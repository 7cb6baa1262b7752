"""Follows the log of one container instance and publishes its lines, across reconnects.

A followed log response breaks for many reasons (API server restart, idle timeouts, a node
proxy); the streamer reopens it with `sinceTime` and the cursor drops what was already
published, so a reconnect neither loses nor duplicates lines (positions.py). When the instance
has ended (container exited, restarted - read with `previous=true` - or pod deleted), the
streamer reads what is left and stops; an unfinished last line is published then, not before.
A chunk Kafka did not acknowledge rewinds the cursor to the last acknowledged line and the stream is
read again from there (the open response is dropped), so failed chunks are re-sent, in order, until
acknowledged; what waits is bounded by the publisher's in-flight budget and the pending budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp

from collectors.multiline import CompiledRule, MultilineJoiner
from collectors.pods import read_hold
from collectors.pods.backoff import Backoff
from collectors.pods.batching import ChunkBatcher, PendingBudget, next_tick
from collectors.pods.blockscan import WireBlock, block_taker, chunked_wire_taker, wire_taker
from collectors.pods.client import ApiStatusError, KubeClient, LogResponse
from collectors.pods.lines import LineSplitter
from collectors.pods.metrics import PodMetrics
from collectors.pods.polled_log import BodyDecoder, PolledLog
from collectors.pods.positions import StreamCursor
from collectors.pods.shared_sleep import sleep_until
from collectors.pods.timestamps import TimestampError, TimestampParser
from core.models import FLAG_TRUNCATED, RawChunk, RawLine, WireLines, make_raw_line
from core.settings import PodCollectorSettings
from kafka_io.partition_batcher import ChunkSink, ImmediateChunkSink
from kafka_io.publisher import ChunkAck

log = logging.getLogger(__name__)
_ENDED_RETRIES = 3  # attempts to read what is left of an ended instance after a broken stream
STORED_CHUNKS = 256  # acknowledged chunks remembered per stream, to re-send those a broker lost
RESUME_AHEAD_SECONDS = 0.01  # a paced stream's connection is read again this long before its lines are due
PACE_MAX_BYTES = 16 * 1024  # a stream bringing more per flush_interval is not paced (_busy_now)


class InstanceStatus(Enum):
    LIVE = "live"  # the instance is the container's current one and is running
    EXITED = "exited"  # current instance, no longer running: read to the end
    REPLACED = "replaced"  # the container restarted once since: read it with previous=true
    GONE = "gone"  # restarted twice since, or the container is no longer in the pod: unreachable
    DELETED = "deleted"  # the pod no longer exists (or left our scope)


_ENDED = (InstanceStatus.GONE, InstanceStatus.DELETED)


def _served(status: InstanceStatus) -> str:
    """Which log the endpoint serves for a status: the current instance's, the previous one's, none."""
    if status is InstanceStatus.REPLACED:
        return "previous"
    return "none" if status in _ENDED else "current"


class _InstanceMoved(Exception):
    def __init__(self, status: InstanceStatus) -> None:
        super().__init__(status.value)
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamTarget:
    namespace: str
    pod: str
    container: str
    stream_id: str
    source: dict[str, Any]


class LogStreamer:
    """One container instance's log, from its start (or resume point) to its end."""

    def __init__(self, target: StreamTarget, cursor: StreamCursor, client: KubeClient, sink: ChunkSink,
                 status: Callable[[], InstanceStatus], verify: Callable[[], Awaitable[InstanceStatus]],
                 cfg: PodCollectorSettings, budget: PendingBudget, metrics: PodMetrics,
                 acknowledged: Callable[[str, int | None, int], None] = lambda sid, ts, pos: None,
                 multiline: CompiledRule | None = None) -> None:
        self.target = target
        # multiline records (collectors/multiline.py): lines of an open record stay here across reconnects
        self._joiner = MultilineJoiner(multiline) if multiline is not None else None
        self._next_rule: tuple[CompiledRule | None] | None = None  # a rule to switch to at the next chunk boundary
        # (position, ts) of the lines read while joining, until a sent chunk covers them (see _last_line_sent)
        self._read_lines: deque[tuple[int, int]] = deque()
        self.cursor = cursor
        self._client = client
        self._sink = sink
        self._status = status  # from the watch: cheap, may lag behind
        self._verify = verify  # from a fresh GET of the pod: used before every reconnect
        self._cfg = cfg
        self._metrics = metrics
        self._budget = budget
        self._batcher = ChunkBatcher(budget, cfg.chunk_lines, cfg.chunk_bytes, cfg.flush_interval)
        self._parser = TimestampParser()
        self._scan = block_taker(self._parser, cursor)  # C or Python, chosen once per stream
        self._scan_wire = wire_taker(cursor)  # None without the C scan
        self._scan_chunked = chunked_wire_taker(cursor)  # the same, for a polled tick's chunked bytes
        self._chunked_body_bytes = min(cfg.read_bufsize, cfg.max_line_bytes)  # what _take_polled takes in one
        self._tail: tuple[bytes, bool] | None = None  # unfinished last line of a cleanly ended response
        self._acknowledged = acknowledged  # (stream id, ts, position) of each acknowledged chunk's last line
        self._resp: LogResponse | None = None
        # a polled log's tick bytes are taken by the poll's callback itself (`_take_polled`) while the task
        # waits for data: the sink must take a chunk without waiting for that
        self._immediate_sink = sink if isinstance(sink, ImmediateChunkSink) else None
        self._waiting_for_data = False  # the task waits in a plain read of the response (nothing pending)
        self._splitter: LineSplitter | None = None  # the current response's
        self._backoff: Backoff | None = None
        self._polled = False  # the response is read at ticks by the poller (polled_log.py): paced by it
        self._rewound = False  # a send failed during the current response: stop taking its lines
        self._unacked: set[asyncio.Future[ChunkAck]] = set()
        # the last failed ack counted: a stream's chunks gathered into one record share its ack, and a
        # refused record is one publish error of this stream however many of its chunks it carried
        self._failed_ack: asyncio.Future[ChunkAck] | None = None
        # acknowledged chunks, with the acknowledged line before each: re-sent if the broker loses them
        self._stored: deque[tuple[ChunkAck, int | None, int]] = deque(maxlen=STORED_CHUNKS)
        self._recoveries_seen = sink.recoveries
        # what the stream brought over the last flush_interval: a busy stream is read as its data comes
        self._window_start, self._window_bytes, self._busy = time.monotonic(), 0, False

    async def run(self) -> None:
        backoff = self._backoff = Backoff(self._cfg.backoff_initial, self._cfg.backoff_max)
        ended_retries = 0
        seen_tail: tuple[bytes, bool] | None = None
        try:
            # The log endpoint serves whichever instance is current. The first connect goes by the watch,
            # which just delivered the pod: `_follow_once` asks the API again after opening, and restart
            # counts only grow, so a lagging watch costs a reopen, never another instance's lines. Before
            # every reconnect the API is asked first (below): by then the watch may lag by much more.
            status = self._status()
            while True:
                if status in _ENDED:  # its log is gone or can no longer be told from another instance's
                    await self._publish_tail(confirmed=self._tail == seen_tail)
                    return
                clean = False
                try:
                    clean = await self._follow_once(status, backoff)
                except _InstanceMoved as moved:  # a restart raced the connect: reconnect to the right log
                    status = moved.status
                    continue
                except ApiStatusError as exc:
                    if exc.status == 404 or (exc.status == 400 and self._status() is not InstanceStatus.LIVE):
                        log.info("log of %s is no longer available (%s)", self.target.stream_id, exc)
                        await self._publish_tail(confirmed=self._tail == seen_tail)
                        return
                    log.warning("log of %s: %s", self.target.stream_id, exc)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    log.info("log stream of %s broke (%s); resuming", self.target.stream_id, exc or type(exc).__name__)
                status = await self._fresh_status()
                if status is not InstanceStatus.LIVE:
                    # An unterminated last line counts only if a second read ends the same way: a
                    # connection closed mid-line looks just like it.
                    if clean and (self._tail is None or self._tail == seen_tail):
                        await self._publish_tail(confirmed=True)
                        if not await self._rewound_before_acked():
                            return
                        clean = False
                    if clean:
                        seen_tail = self._tail
                    ended_retries += 1
                    if ended_retries > _ENDED_RETRIES:
                        log.warning("giving up on the rest of %s after %d attempts", self.target.stream_id,
                                    ended_retries)
                        return
                self._metrics.reconnects.inc()
                await asyncio.sleep(backoff.next_delay())
        except asyncio.CancelledError:
            self._join_due(everything=True)
            await self._flush()  # publish what was read before stopping
            raise

    async def _fresh_status(self) -> InstanceStatus:
        try:
            return await self._verify()
        except Exception as exc:  # API unreachable: fall back to what the watch says
            log.debug("could not check %s: %s", self.target.stream_id, exc)
            return self._status()

    async def _follow_once(self, status: InstanceStatus, backoff: Backoff) -> bool:
        """Read one response to its end; True if it ended cleanly (not broken)."""
        self.cursor.begin_connection()
        self._rewound = False
        resp = await self._client.open_log(self.target.namespace, self.target.pod, self.target.container,
                                           self.cursor.since_time(), status is InstanceStatus.REPLACED,
                                           self._cfg.flush_interval if self._cfg.poll_logs else None)
        # Checked before and after opening: restart counts only grow, so if the instance the endpoint
        # serves (current or previous) is still ours afterwards, it was ours when the response began.
        after = await self._fresh_status()
        if after is not InstanceStatus.DELETED and _served(after) != _served(status):
            resp.close()
            raise _InstanceMoved(after)
        self._tail = None  # this response replays the previous one's unfinished line
        splitter = self._splitter = LineSplitter(self._cfg.max_line_bytes)
        content = resp.content
        read_bytes = self._cfg.read_bufsize  # taken from the response before the budget is checked again
        paced_tick: float | None = None  # the tick a paced wait after a flush ended at (_pace_to_next_tick)
        self._resp = resp
        polled = resp if isinstance(resp, PolledLog) else None
        self._polled = polled is not None
        if polled is not None:
            polled.consumer = self._take_polled
            polled.chunk_consumer = self._take_polled_chunks
        try:
            while True:
                if self._budget.exceeded:
                    if self._budget.holds_share(self._batcher.bytes):
                        await self._flush()
                    elif not await self._room_before_due():
                        self._join_due()
                        await self._flush()
                        continue
                # bytes already buffered are taken without a coroutine or a timer: under a backlog most
                # reads find data waiting, and a due flush is checked again after this block anyway
                data = content.read_nowait(read_bytes)  # b"" when nothing is buffered (or at the end)
                # what the read right after a paced wait took is due at its tick; nothing else is (a line
                # read after waiting for data is due at the tick after it, as always)
                due_by, paced_tick = (paced_tick if data else None), None
                if not data:
                    wait = self._batcher.seconds_left()
                    if self._joiner is not None and self._joiner.open:
                        wait = min(wait if wait is not None else self._joiner.rule.timeout, self._joiner.rule.timeout)
                    if wait is None:
                        self._waiting_for_data = True
                        try:
                            data = await content.read(read_bytes)
                        finally:
                            self._waiting_for_data = False
                    else:
                        try:
                            async with asyncio.timeout(wait):  # no task per read, unlike wait_for
                                data = await content.read(read_bytes)
                        except TimeoutError:  # (nothing came since: a quiet stream reads on, unpaced)
                            self._join_due()
                            await self._flush()
                            continue
                if not data or self._rewound:
                    break
                if polled is not None:  # what a tick's poll read is due at that tick
                    due_by = polled.polled_tick
                backoff.reset()
                if self._next_rule is not None:
                    await self._switch_rule()
                drained = len(data) < read_bytes  # took all that was buffered: not reading from behind
                self._window_bytes += len(data)
                self._take_split(*splitter.feed_block(data))
                del data  # not held while a flush waits for the publisher: hundreds of streams wait at once
                if due_by is not None:
                    self._batcher.due_by(due_by)
                if self._batcher.full:
                    await self._flush()
                elif drained and self._batcher.seconds_left() == 0:
                    await self._flush()
                    if self._paceable():
                        paced_tick = await self._pace_to_next_tick()
                elif drained and self._paceable():
                    await self._pace()
        except asyncio.CancelledError:  # stopping: what the connection holds came before the stop
            if polled is not None and not self._rewound:
                self._take_rest(polled, splitter)
            raise
        except (aiohttp.ClientError, OSError):
            if not self._rewound:
                raise
        finally:
            self._resp = self._splitter = None
            resp.close()
        if self._rewound:  # read again from the last acknowledged line
            return False
        await self._flush()
        self._tail = (splitter.remainder, splitter.remainder_truncated) if splitter.remainder else None
        return True

    def _take_rest(self, log: PolledLog, splitter: LineSplitter) -> None:
        """Take what a polled log's connection holds now, as a graceful stop publishes every line read: a
        polled stream's lines wait in the kernel until their tick, where an aiohttp one's were read as
        they came (a broken connection leaves what it read, still taken)."""
        with contextlib.suppress(OSError):
            log.take_bytes(None)
            while data := log.read_nowait(self._cfg.read_bufsize):
                self._take_split(*splitter.feed_block(data))

    def _take_split(self, lines: list[tuple[bytes, bool]], block: bytes) -> None:
        """The lines of a read of the response as LineSplitter.feed_block split them (its unfinished last
        line stays in the splitter)."""
        if lines:
            self._take(lines)
        if block:
            self._take_block(block)

    def _busy_now(self) -> bool:
        """Whether the stream brought more than PACE_MAX_BYTES over its last `flush_interval` (weighed once an
        interval). A paced connection holds what the kernel, the server and aiohttp buffer for an interval,
        so a busy pod is read as its data comes: pacing it would cap its rate at those buffers per interval.
        Its reads carry many lines anyway."""
        now = time.monotonic()
        if now - self._window_start >= self._cfg.flush_interval:
            self._busy = self._window_bytes > PACE_MAX_BYTES
            self._window_start, self._window_bytes = now, 0
        return self._busy

    def _paceable(self) -> bool:
        """Whether the stream may wait paced: not busy, and no record open in the joiner (an open record is
        sent at its own flush timeout)."""
        return not self._polled and not self._busy_now() and not (self._joiner is not None and self._joiner.open)

    async def _pace(self) -> None:
        """After a read that took all there was, wait until the lines it took are due: what the pod writes
        meanwhile is read and sent with them. A slow pod's lines arrive a network write each; read as they
        came, each cost a socket read, the HTTP chunk parser, a stream read, a timer and a hand-over. The
        connection is not read meanwhile either (its bytes held in the kernel, read_hold.py), so the
        kernel gathers those writes and one socket read takes them, shortly before the lines are due.
        No line waits longer: the lines taken are sent when due either way, the later ones with them."""
        left = self._batcher.seconds_left()
        if left:  # None: nothing pending; 0: due now
            await self._wait_paused(self._batcher.due_at)

    async def _pace_to_next_tick(self) -> float:
        """After a flush of due lines, wait paused until the next tick, which it returns: what the pod writes
        meanwhile is read together shortly before that tick and is due at it, as if its first line had been
        read as it came. Reading on instead would wake for that first line alone, a socket read and a
        hand-over each."""
        tick = next_tick(time.monotonic(), self._cfg.flush_interval)
        await self._wait_paused(tick)
        return tick

    async def _wait_paused(self, until: float) -> None:
        """Wait until `until` (a tick, monotonic) without reading the connection, reading it again
        RESUME_AHEAD_SECONDS before. Streams waiting for the same tick share its timers (shared_sleep.py)."""
        connection = self._resp.connection if self._resp is not None else None
        protocol = connection.protocol if connection is not None else None
        if protocol is None or protocol.transport is None or until - time.monotonic() <= RESUME_AHEAD_SECONDS:
            await sleep_until(until)  # released or lost, or too close to hold
            return
        resume = read_hold.hold_reads(protocol, PACE_MAX_BYTES)
        try:
            await sleep_until(until - RESUME_AHEAD_SECONDS)
        finally:
            resume()  # before anything else reads or closes it (a closed one ignores it)
        # The task sleeps again, so the event loop polls the socket at least once before the task reads: a
        # loop callback resuming it while the task slept on to the tick came, on a late loop, in the same
        # turn as the task's wake-up, which then read before the socket was (its lines waited a tick more).
        # A timer still ahead fires after the loop's next poll; on a loop already past the tick, a timer
        # of its own gives the poll its turn.
        if until - time.monotonic() >= RESUME_AHEAD_SECONDS / 2:
            await sleep_until(until)
        else:
            await asyncio.sleep(RESUME_AHEAD_SECONDS)

    async def _room_before_due(self) -> bool:
        """Wait for room in the pending budget; False if this stream's pending lines fell due first
        (they are flushed then: a stream holding less than its share waits for the others' flushes)."""
        wait = self._batcher.seconds_left()
        if wait is None:
            await self._budget.wait_for_room()
            return True
        try:
            async with asyncio.timeout(wait):
                await self._budget.wait_for_room()
        except TimeoutError:
            return False
        return True

    def use_rule(self, rule: CompiledRule | None) -> None:
        """Join by `rule` (None: do not join) from the next chunk boundary on: the lines read before the
        switch are sent as the old rule joined them, the lines read after it are joined by the new one."""
        self._next_rule = (rule,)

    async def _switch_rule(self) -> None:
        assert self._next_rule is not None
        (rule,), self._next_rule = self._next_rule, None
        if rule is None:
            self._join_due(everything=True)  # no rule any more: the open record is complete
            self._joiner = None
        elif self._joiner is not None:
            self._joiner.rule = rule  # an open record continues under the new rule
        else:
            self._joiner = MultilineJoiner(rule)
        await self._flush()  # the chunk boundary: nothing the new rule joined shares a chunk with the old

    def _take(self, lines: list[tuple[bytes, bool]]) -> None:
        """Turn `<timestamp> <content>` lines into raw line entries, dropping already published ones."""
        parse, accept = self._parser.parse, self.cursor.accept
        entries: list[RawLine] = []
        size = duplicates = 0
        for line, truncated in lines:
            space = line.find(b" ")
            try:
                ts = parse(line[:space] if space > 0 else line)
                content = line[space + 1:] if space > 0 else b""
            except TimestampError:  # not prefixed (should not happen with timestamps=true): keep the order
                ts = self.cursor.last_ts_ns or 0
                content = line
            position = accept(ts)
            if position is None:
                duplicates += 1
                continue
            size += len(content)
            try:  # make_raw_line, inlined for the common case: this loop runs once per line
                entries.append([position, content.decode(), "", ts, FLAG_TRUNCATED if truncated else 0])
            except UnicodeDecodeError:
                entries.append(make_raw_line(position, content, "", ts, FLAG_TRUNCATED if truncated else 0))
        self._hand_over(entries, size, duplicates)

    def _take_block(self, block: bytes) -> None:
        """`_take` for a block of whole lines (none over the limit) in one pass, without a bytes object or
        tuple per line (blockscan.py): written straight into their wire encoding when the C scan is built
        and no multiline rule joins them (no object per line at all); any other shape goes through `_take`,
        line by line."""
        if self._scan_wire is not None and self._joiner is None:
            wired = self._scan_wire(block)
            if wired is not None:
                self._hand_over_wire(*wired)
                return
        self._take_block_entries(block)

    def _take_block_entries(self, block: bytes) -> None:
        """`_take_block` without the wire scan: entries, in C when it can (blockscan.block_taker)."""
        taken = self._scan(block)
        if taken is None:
            self._take([(line, False) for line in block.split(b"\n")[:-1]])
            return
        self._hand_over(*taken)

    def _hand_over_wire(self, wire: WireLines, size: int, duplicates: int, last: tuple[int, int]) -> None:
        """`_hand_over` for lines in their wire encoding (never joined: only taken so without a joiner);
        `last`: the (position, ts) of the last of them."""
        self._count_read(wire.count, duplicates)
        self._batcher.extend_wire(wire, size, last)

    def _count_read(self, taken: int, duplicates: int) -> None:
        """Lines read, duplicates included (the heartbeat's lines in), and the duplicates dropped."""
        self._metrics.lines_read.inc(taken + duplicates)
        if duplicates:
            self._metrics.duplicates.inc(duplicates)

    def _hand_over(self, entries: list[RawLine], size: int, duplicates: int) -> None:
        """Lines taken from the response to the multiline joiner (when configured) and the batch; counted
        as read here, duplicates included, before joining (the heartbeat's lines in)."""
        self._count_read(len(entries), duplicates)
        if self._joiner is not None:
            self._read_lines.extend((raw[0], raw[3]) for raw in entries)
            entries = [raw for raw, _ in self._joiner.push_many(entries, {}, time.monotonic())]
            size = sum(len(raw[1]) for raw in entries)
        self._batcher.extend(entries, size)

    async def _publish_tail(self, confirmed: bool) -> None:
        """Publish the unterminated last line; flagged truncated unless two reads ended with it."""
        if self._tail is not None:
            (line, truncated), self._tail = self._tail, None
            self._take([(line, truncated or not confirmed)])
        self._join_due(everything=True)  # the instance ended: its open record is complete
        await self._flush()

    def _join_due(self, everything: bool = False) -> None:
        """Move multiline records past their flush timeout (or all of them) to the batch."""
        if self._joiner is None or not self._joiner.open:
            return
        done = self._joiner.flush_all() if everything else self._joiner.flush_due(time.monotonic())
        entries = [raw for raw, _ in done]
        self._batcher.extend(entries, sum(len(raw[1]) for raw in entries))

    async def _flush(self) -> None:
        if not self._batcher.pending:
            return
        chunk, size, on_ack = self._next_chunk()
        try:
            async with self._budget.gate:
                ack = await self._sink.publish(chunk, size)  # blocks while Kafka's in-flight budget is spent
        finally:
            self._budget.release(size)
        self._unacked.add(ack)  # awaited by rewinds and stops too
        ack.add_done_callback(on_ack)

    def _next_chunk(self) -> tuple[RawChunk, int, Callable[[asyncio.Future[ChunkAck]], None]]:
        """The pending lines as a chunk, their size, and what to call when it is acknowledged."""
        pending = self._batcher.take()
        epoch, (position, ts) = self.cursor.epoch, pending.last
        if self._joiner is not None or self._read_lines:
            position, ts = self._last_line_sent(position, ts)
        return (self._chunk(pending.lines, pending.wire), pending.size,
                self._on_ack(epoch, ts, position, pending.line_count, pending.size))

    def _chunk(self, lines: list[RawLine], wire: WireLines | None) -> RawChunk:
        return RawChunk(self.target.source, self.target.stream_id, time.time_ns(), lines, wire)

    def _on_ack(self, epoch: int, ts: int, position: int, count: int,
                size: int) -> Callable[[asyncio.Future[ChunkAck]], None]:
        """What to call with a sent chunk's ack future: `_acked`, told the chunk's last line and size."""
        return functools.partial(self._acked, epoch, ts, position, count, size)

    def _plain_poll_sink(self) -> ImmediateChunkSink | None:
        """The sink, when a polled log's tick bytes may be taken and published by the poll's callback
        itself, without waking the task: only in the plain case (the task waiting for data with nothing
        pending, no multiline joining, no rules switch, room in both budgets and in the sink)."""
        sink = self._immediate_sink
        if (sink is None or not self._waiting_for_data or self._rewound or self._batcher.pending
                or self._joiner is not None or self._next_rule is not None or self._budget.exceeded
                or self._budget.gate.locked() or self._splitter is None or not sink.has_room):
            return None
        return sink

    def _take_polled_chunks(self, body: BodyDecoder, data: bytes, tick: float) -> bool:
        """`_take_polled` for a tick's bytes before they are dechunked, in one C call (`take_chunked_wire`):
        when the stream is in the plain case, no unfinished line waits in the splitter, and the bytes are
        well-formed chunks of whole kubelet lines within a read's worth. False, nothing changed, for
        anything else: the poll then dechunks them and calls `_take_polled`."""
        sink = self._plain_poll_sink()
        left = body.chunk_state
        if (sink is None or left is None or self._scan_chunked is None or self._splitter is None
                or not self._splitter.holds_nothing or self._read_lines):
            return False
        taken = self._scan_chunked(data, left, self._chunked_body_bytes)
        if taken is None:
            return False
        wired, left = taken
        body.resume_chunks(left)
        if self._backoff is not None:
            self._backoff.reset()
        self._publish_wired(sink, wired)
        return True

    def _take_polled(self, data: bytes, tick: float) -> bool:
        """Take a tick's bytes of a polled log and publish their lines at once, without waking the task:
        only in the plain case (`_plain_poll_sink`; and no more than a read's worth of bytes: a chunk stays
        within `chunk_lines` and `chunk_bytes` as the task's reads keep it). False when the task must
        read them itself, as usual."""
        sink = self._plain_poll_sink()
        if sink is None or len(data) > self._cfg.read_bufsize or self._splitter is None:
            return False
        if self._backoff is not None:
            self._backoff.reset()
        lines, block = self._splitter.feed_block(data)
        if block and not lines and not self._read_lines and self._scan_wire is not None:
            wired = self._scan_wire(block)
            if wired is not None:  # the usual read: whole kubelet lines, from the scan straight to the sink
                self._publish_wired(sink, wired)
                return True
            self._take_block_entries(block)  # lines the C scan does not answer for
        else:
            self._take_split(lines, block)
        if self._batcher.pending:  # due at `tick`, now: published as the task would have
            chunk, size, on_ack = self._next_chunk()
            self._unacked.add(sink.publish_nowait(chunk, size, on_ack))
            self._budget.release(size)
        return True

    def _publish_wired(self, sink: ImmediateChunkSink, wired: WireBlock) -> None:
        """A scan's lines straight to the sink, counted, their ack told to `_acked`."""
        wire, size, duplicates, (position, ts) = wired
        self._count_read(wire.count, duplicates)
        if wire.count:
            on_ack = self._on_ack(self.cursor.epoch, ts, position, wire.count, size)
            self._unacked.add(sink.publish_nowait(self._chunk([], wire), size, on_ack))

    def _last_line_sent(self, position: int, ts: int) -> tuple[int, int]:
        """The last line a chunk being sent covers. A joined record takes its first line's position, so
        acknowledging that would make a rewind or a restart read the record's tail again as records of
        their own: every line read before the earliest record still held is in this chunk or before it."""
        held = self._joiner.min_resume if self._joiner is not None else None
        read = self._read_lines
        last = position, ts  # lines read after joining stopped (a rules switch) are not in `read`
        while read and (held is None or read[0][0] < held):
            position, ts = read.popleft()
        return max((position, ts), last) if held is None else (position, ts)

    def _acked(self, epoch: int, ts: int, position: int, count: int, size: int,
               fut: asyncio.Future[ChunkAck]) -> None:
        self._unacked.discard(fut)
        self.check_lost()
        if fut.cancelled() or fut.exception() is not None:
            if not fut.cancelled() and fut is not self._failed_ack:  # cancelled: a batch dropped on purpose
                self._failed_ack = fut  # (a rewind's discard, a shutdown), not a record Kafka refused
                self._metrics.publish_errors.inc()
            if self._read_again(epoch):
                log.warning("Kafka did not acknowledge %d lines of %s (%s); re-sending from the last "
                            "acknowledged line", count, self.target.stream_id,
                            "cancelled" if fut.cancelled() else fut.exception())
            return
        before = self.cursor.acked_ts_ns, self.cursor.acked_position
        if self.cursor.acknowledge(epoch, ts, position):
            self._stored.append((fut.result(), *before))
            self._acknowledged(self.target.stream_id, ts, position)
        self._metrics.lines.inc(count)
        self._metrics.bytes.inc(size)

    def _read_again(self, epoch: int) -> bool:
        """Continue after the last acknowledged line: drop what was read since, end the response."""
        if not self.cursor.rewind(epoch):
            return False
        self._rewound = True
        self._budget.release(self._batcher.take().size)
        self._sink.discard(self.target.stream_id)  # lines gathered with other streams' but not sent yet
        if self._joiner is not None:  # its open record's lines come after the acknowledged one: read again
            self._joiner = MultilineJoiner(self._joiner.rule)
        self._read_lines.clear()
        if self._resp is not None:
            self._resp.close()
        return True

    def check_lost(self) -> None:
        """After the publisher replaced its producer, re-send from the first acknowledged chunk the broker
        no longer holds (kafka_io/publisher.py)."""
        if self._sink.recoveries == self._recoveries_seen:
            return
        self._recoveries_seen = self._sink.recoveries
        lost = [(position, ts) for ack, ts, position in self._stored if self._sink.lost(ack)]
        self._stored.clear()
        if not lost:
            return
        position, ts = min(lost)
        log.warning("the broker lost %d acknowledged chunks of %s; re-sending from position %d", len(lost),
                    self.target.stream_id, position)
        self.cursor.forget_acknowledged(ts, position)
        self._acknowledged(self.target.stream_id, ts, position)
        self._read_again(self.cursor.epoch)

    async def _rewound_before_acked(self) -> bool:
        """Wait for every chunk sent to be acknowledged; True if one failed (read again from it)."""
        epoch = self.cursor.epoch
        if self._unacked:
            await asyncio.wait(set(self._unacked))
        return self.cursor.epoch != epoch
