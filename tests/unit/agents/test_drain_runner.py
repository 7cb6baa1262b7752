"""DrainRunner: batching, retries, the circuit breaker, dead letters, and returning only when done.

The sink here is an in-memory `Sink` subclass scripted per test (what the sink answers is the
thing under test's input); the runner, its breaker, the chunk decoding and the metadata splice are
the real ones. Backoffs are set to milliseconds so a retried write costs no wall time, and every
wait is on a condition, not a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from agents.breaker import BreakerState
from agents.drain_runner import DrainRunner, SinkRecord, to_sink_lines
from core.errors import PermanentError, RetriableError
from core.models import DeadLetter, ParsedChunk, line_id
from core.settings import Settings
from sinks.base import ItemFailure, NeedsLines, Sink, SinkBatch, SinkLine, WriteResult
from tests.support.polling import wait_for

Answer = Callable[[SinkBatch], WriteResult]


class ScriptedSink(Sink):
    """Records every batch it is handed and answers with the next scripted outcome (then success)."""

    name = "scripted"

    def __init__(self, limits: tuple[int, int, float] = (1000, 1 << 20, 0.1)) -> None:
        self.limits = limits
        self.script: list[Answer | Exception] = []
        self.attempts: list[SinkBatch] = []
        self.written: list[bytes] = []
        self.start_failures = 0
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.start_failures:
            self.start_failures -= 1
            raise RetriableError("server not up yet")
        self.started = True

    def batch_limits(self) -> tuple[int, int, float]:
        return self.limits

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        self.attempts.append(SinkBatch(batch.topic, batch.partition, list(batch.lines)))
        answer: Answer | Exception | None = self.script.pop(0) if self.script else None
        if isinstance(answer, Exception):
            raise answer
        result = answer(batch) if answer is not None else WriteResult()
        failed = {id(f.line) for f in result.permanent + result.retry}
        self.written.extend(line.document for line in batch.lines if id(line) not in failed)
        return result

    async def stop(self) -> None:
        self.stopped = True


def settings(breaker_failures: int = 3, breaker_reset: str = "20ms") -> Settings:
    return Settings(sinks={"retry": {"initial_backoff": "1ms", "max_backoff": "2ms",
                                     "breaker_failures": breaker_failures, "breaker_reset": breaker_reset}})


def record(partition: int, offset: int, positions: range, stream: str = "s1") -> SinkRecord:
    lines = [[0, stream, pos, 1_700_000_000_000_000_000 + pos, f"t{pos % 3}", "info", "web",
              orjson.dumps({"n": pos, "traceId": f"t{pos % 3}"}).decode(), "stdout"] for pos in positions]
    chunk = ParsedChunk([{"kind": "file", "pod": "p"}], lines)
    return SinkRecord(partition, offset, chunk.encode())


def numbers(documents: list[bytes]) -> list[int]:
    return [orjson.loads(doc)["n"] for doc in documents]


class DeadLetters:
    def __init__(self) -> None:
        self.items: list[DeadLetter] = []

    async def __call__(self, items: list[DeadLetter]) -> None:
        self.items.extend(items)


def runner_for(sink: ScriptedSink, config: Settings | None = None) -> tuple[DrainRunner, DeadLetters]:
    dead = DeadLetters()
    return DrainRunner(sink, config or settings(), "sink.scripted", dead), dead


async def test_every_line_is_written_once_in_offset_order_and_counted() -> None:
    sink = ScriptedSink()
    runner, dead = runner_for(sink)
    delivered = await runner.deliver([record(0, 7, range(10, 15)), record(0, 3, range(0, 10)),
                                      record(1, 2, range(100, 104), stream="s2")])
    assert delivered == 19
    assert numbers(sink.written) == [*range(0, 15), *range(100, 104)]
    assert [b.partition for b in sink.attempts] == [0, 1] and not dead.items
    assert sink.started


async def test_batches_split_at_record_boundaries_within_the_sink_limits() -> None:
    sink = ScriptedSink(limits=(8, 1 << 20, 0.1))
    runner, _ = runner_for(sink)
    await runner.deliver([record(0, offset, range(offset * 5, offset * 5 + 5)) for offset in range(4)])
    # 4 records of 5 lines, at most 8 lines a batch: whole records per batch, never 5 + 3.
    assert [len(b.lines) for b in sink.attempts] == [5, 5, 5, 5]
    assert [(b.first_offset, b.last_offset) for b in sink.attempts] == [(0, 0), (1, 1), (2, 2), (3, 3)]


async def test_a_record_larger_than_the_limit_is_split_inside() -> None:
    sink = ScriptedSink(limits=(4, 1 << 20, 0.1))
    runner, _ = runner_for(sink)
    await runner.deliver([record(0, 0, range(10))])
    assert [len(b.lines) for b in sink.attempts] == [4, 4, 2]
    assert numbers(sink.written) == list(range(10))


async def test_the_byte_limit_bounds_a_batch_too() -> None:
    sink = ScriptedSink(limits=(1000, 1, 0.1))  # every line is bigger than one byte
    runner, _ = runner_for(sink)
    await runner.deliver([record(0, 0, range(3))])
    assert [len(b.lines) for b in sink.attempts] == [1, 1, 1]


async def test_documents_carry_the_line_identity_and_source() -> None:
    sink = ScriptedSink()
    runner, _ = runner_for(sink)
    await runner.deliver([record(2, 40, range(5, 7), stream="pod/app")])
    doc = orjson.loads(sink.written[0])
    meta = doc["logweave"]
    assert meta["lid"] == line_id("pod/app", 5) and meta["sid"] == "pod/app" and meta["pos"] == 5
    assert meta["trace"] == "t2" and meta["source"] == {"kind": "file", "pod": "p"}
    assert [line.line_id for line in to_sink_lines(record(0, 0, range(2)), "logweave")] == \
        [line_id("s1", 0), line_id("s1", 1)]


async def test_a_retriable_batch_failure_is_retried_until_written_and_nothing_dead_lettered() -> None:
    sink = ScriptedSink()
    sink.script = [RetriableError("503"), RetriableError("503")]
    runner, dead = runner_for(sink)
    assert await runner.deliver([record(0, 0, range(3))]) == 3
    assert len(sink.attempts) == 3 and numbers(sink.written) == [0, 1, 2]
    assert not dead.items and runner.breaker.state is BreakerState.CLOSED


async def test_a_whole_batch_refused_permanently_is_kept_and_retried_not_dead_lettered() -> None:
    """A sink refusing every write is a sink or configuration fault: the data stays in Kafka."""
    sink = ScriptedSink()
    sink.script = [PermanentError("403 forbidden")]
    runner, dead = runner_for(sink)
    await runner.deliver([record(0, 0, range(2))])
    assert len(sink.attempts) == 2 and numbers(sink.written) == [0, 1] and not dead.items


async def test_per_item_permanent_failures_are_dead_lettered_and_the_rest_written() -> None:
    def reject_odd(batch: SinkBatch) -> WriteResult:
        return WriteResult(permanent=[ItemFailure(line, "mapping", "field n is not a date")
                                      for line in batch.lines if orjson.loads(line.document)["n"] % 2])

    sink = ScriptedSink()
    sink.script = [reject_odd]
    runner, dead = runner_for(sink)
    assert await runner.deliver([record(0, 9, range(4))]) == 4
    assert numbers(sink.written) == [0, 2] and len(sink.attempts) == 1
    assert [(d.reason, d.stage, d.stream_id, d.position) for d in dead.items] == \
        [("mapping", "sink:scripted", line_id("s1", 1), 9), ("mapping", "sink:scripted", line_id("s1", 3), 9)]
    assert all(orjson.loads(d.text)["n"] % 2 for d in dead.items)


async def test_per_item_retriable_failures_resend_only_those_items() -> None:
    def throttle_first_two(batch: SinkBatch) -> WriteResult:
        return WriteResult(retry=[ItemFailure(line, "429", "too many requests") for line in batch.lines[:2]])

    sink = ScriptedSink()
    sink.script = [throttle_first_two]
    runner, dead = runner_for(sink)
    await runner.deliver([record(0, 0, range(5))])
    assert [len(b.lines) for b in sink.attempts] == [5, 2]
    assert sorted(numbers(sink.written)) == [0, 1, 2, 3, 4] and not dead.items


async def test_deliver_does_not_return_while_the_sink_is_down_and_the_breaker_opens() -> None:
    """The drain acks a batch only after deliver returns: while the sink fails, it must not."""
    sink = ScriptedSink()
    sink.script = [RetriableError("connection refused")] * 1000
    runner, dead = runner_for(sink, settings(breaker_failures=3, breaker_reset="5ms"))
    task = asyncio.create_task(runner.deliver([record(0, 0, range(3))]))
    await wait_for(lambda: runner.breaker.opened_count >= 2, timeout=30, what="the breaker to open twice",
                   last_seen=lambda: (len(sink.attempts), runner.breaker.state))
    assert not task.done() and not sink.written and not dead.items
    sink.script.clear()  # the server comes back
    assert await asyncio.wait_for(task, timeout=30) == 3
    assert numbers(sink.written) == [0, 1, 2] and runner.breaker.state is BreakerState.CLOSED


async def test_an_open_breaker_spaces_attempts_by_its_reset_time() -> None:
    sink = ScriptedSink()
    sink.script = [RetriableError("down")] * 4
    runner, _ = runner_for(sink, settings(breaker_failures=2, breaker_reset="200ms"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.deliver([record(0, 0, range(1))])
    # 2 failures open it; each of the next 2 attempts is a half-open probe after the reset time.
    assert len(sink.attempts) == 5 and runner.breaker.opened_count == 3
    assert loop.time() - started >= 0.6 * 0.99


async def test_start_retries_a_sink_that_is_not_ready_and_stop_closes_it() -> None:
    sink = ScriptedSink()
    sink.start_failures = 2
    runner, _ = runner_for(sink)
    await runner.start()
    assert sink.started and runner.started
    await runner.stop()
    assert sink.stopped


async def test_stop_before_start_does_not_touch_the_sink() -> None:
    sink = ScriptedSink()
    runner, _ = runner_for(sink)
    await runner.stop()
    assert not sink.stopped


@pytest.mark.parametrize("bad", [b"not a chunk", orjson.dumps({"v": 1, "t": "raw"})])
async def test_a_record_that_is_not_a_parsed_chunk_fails_loudly(bad: bytes) -> None:
    from core.errors import ChunkFormatError

    runner, _ = runner_for(ScriptedSink())
    with pytest.raises(ChunkFormatError):
        await runner.deliver([SinkRecord(0, 0, bad)])



# -- sinks that take whole records packed (Sink.takes_packed, sinks/packed.py) ------------------------------
class PackedSink(ScriptedSink):
    takes_packed = True

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        assert not batch.lines, "a packed sink got lines"
        self.attempts.append(SinkBatch(batch.topic, batch.partition, [], batch.known_size, list(batch.packed)))
        answer: Answer | Exception | None = self.script.pop(0) if self.script else None
        if isinstance(answer, Exception):
            raise answer
        result = answer(batch) if answer is not None else WriteResult()
        self.written.extend(doc for record in batch.packed for doc in record.documents.split(b"\n")[:-1])
        return result


@pytest.mark.parametrize("pure", [False, True], ids=["c", "reference"])
async def test_a_packed_sink_gets_whole_records_in_offset_order_within_its_limits(
        pure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = PackedSink(limits=(8, 1 << 20, 0.1))
    runner, dead = runner_for(sink)
    if pure:
        monkeypatch.setattr(runner, "_splice", None)
    delivered = await runner.deliver([record(0, 2, range(10, 13)), record(1, 0, range(100, 110), stream="s2"),
                                      record(0, 0, range(0, 5)), record(0, 1, range(5, 10))])
    assert delivered == 23 and not dead.items
    # partition 0: 5 + 5 > 8, so records 0 and 1 apart, then 5 + 3; partition 1: one record above the limit, alone
    assert [(b.partition, [r.offset for r in b.packed], b.line_count) for b in sink.attempts] == \
        [(0, [0], 5), (0, [1, 2], 8), (1, [0], 10)]
    assert numbers(sink.written) == [*range(0, 13), *range(100, 110)]
    assert sink.attempts[0].size_bytes == sum(len(doc) for doc in sink.written[:5])
    reference = [x.document for x in to_sink_lines(record(0, 0, range(0, 5)), "logweave")]
    assert sink.written[:5] == reference


async def test_a_packed_batch_is_retried_whole_until_written() -> None:
    sink = PackedSink()
    sink.script = [RetriableError("disk full"), RetriableError("disk full")]
    runner, dead = runner_for(sink)
    assert await runner.deliver([record(0, 0, range(3)), record(0, 1, range(3, 5))]) == 5
    assert len(sink.attempts) == 3 and [b.line_count for b in sink.attempts] == [5, 5, 5]
    assert numbers(sink.written) == [0, 1, 2, 3, 4] and not dead.items


async def test_a_packed_sink_reporting_failures_per_line_is_refused_loudly() -> None:
    sink = PackedSink()
    sink.script = [lambda batch: WriteResult(retry=[ItemFailure(SinkLine("x-1", "t", 0, "", "", b"{}", 0, 0),
                                                                 "429", "slow down")])]
    runner, _ = runner_for(sink)
    with pytest.raises(TypeError, match="must raise for the whole batch"):
        await runner.deliver([record(0, 0, range(2))])


class RefusingPackedSink(PackedSink):
    """Asks for lines (NeedsLines) whenever handed a packed batch; as lines, refuses the line numbered 3."""

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        if batch.packed:
            self.attempts.append(SinkBatch(batch.topic, batch.partition, [], batch.known_size, list(batch.packed)))
            raise NeedsLines("an out-of-range event time")
        return await ScriptedSink.write_batch(self, batch)


async def test_a_packed_batch_the_sink_hands_back_comes_again_as_lines_and_its_refusals_are_dead_lettered() -> None:
    sink = RefusingPackedSink(limits=(4, 1 << 20, 0.1))
    sink.script = [lambda batch: WriteResult(), lambda batch: WriteResult(permanent=[
        ItemFailure(line, "event_time_out_of_range", "1969") for line in batch.lines
        if orjson.loads(line.document)["n"] == 3])]
    runner, dead = runner_for(sink)
    assert await runner.deliver([record(0, 0, range(3)), record(0, 1, range(3, 7))]) == 7
    # packed: [0] (3 lines) and [1] (4 lines) apart, each handed back; as lines: the same two batches
    assert [(bool(b.packed), b.line_count) for b in sink.attempts] == [(True, 3), (False, 3), (True, 4), (False, 4)]
    assert numbers(sink.written) == [0, 1, 2, 4, 5, 6]
    assert [(d.reason, orjson.loads(d.text)["n"], d.stream_id, d.position) for d in dead.items] == \
        [("event_time_out_of_range", 3, line_id("s1", 3), 1)]


class OverlappingSink(ScriptedSink):
    """Writes commute (`concurrent_batches` 2): each write holds until released, so the test sees which
    batches are in progress together."""

    concurrent_batches = 2

    def __init__(self) -> None:
        super().__init__(limits=(5, 1 << 20, 0.1))
        self.in_progress: list[int] = []  # first line of each batch being written
        self.most_at_once = 0
        self.release = asyncio.Event()
        self.failures: dict[int, int] = {}  # first line of a batch -> how many of its writes fail retriably

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        first = orjson.loads(batch.lines[0].document)["n"]
        self.in_progress.append(first)
        self.most_at_once = max(self.most_at_once, len(self.in_progress))
        try:
            await self.release.wait()
            if self.failures.get(first):
                self.failures[first] -= 1
                await asyncio.sleep(0.005)
                raise RetriableError("503")
            return await super().write_batch(batch)
        finally:
            self.in_progress.remove(first)


async def test_a_sink_whose_writes_commute_gets_two_batches_at_once_and_deliver_waits_for_all() -> None:
    sink = OverlappingSink()
    runner, _ = runner_for(sink)
    delivering = asyncio.ensure_future(runner.deliver([record(0, n, range(5 * n, 5 * n + 5)) for n in range(5)]))
    await wait_for(lambda: len(sink.in_progress) == 2, what="two batches in progress")
    assert sorted(sink.in_progress) == [0, 5]  # the first two batches, the third waits for a free writer
    await asyncio.sleep(0.01)
    assert not delivering.done() and sink.most_at_once == 2
    sink.release.set()
    assert await delivering == 25
    assert sorted(numbers(sink.written)) == list(range(25)) and sink.most_at_once == 2


async def test_a_retried_batch_holds_up_only_its_own_writer() -> None:
    sink = OverlappingSink()
    sink.release.set()
    sink.failures = {0: 2}  # the first batch fails twice
    runner, dead = runner_for(sink)
    assert await runner.deliver([record(0, n, range(5 * n, 5 * n + 5)) for n in range(4)]) == 20
    assert sorted(numbers(sink.written)) == list(range(20)) and not dead.items
    # the other writer wrote the three other batches while the first was retried
    assert [orjson.loads(b.lines[0].document)["n"] for b in sink.attempts] == [5, 10, 15, 0]


async def test_a_failure_outside_the_contract_stops_every_writer_and_is_raised() -> None:
    sink = OverlappingSink()
    sink.release.set()
    sink.script = [ValueError("a bug in the sink")]
    runner, _ = runner_for(sink)
    with pytest.raises(ValueError, match="a bug"):
        await runner.deliver([record(0, n, range(5 * n, 5 * n + 5)) for n in range(6)])
    await asyncio.sleep(0.01)
    assert not sink.in_progress  # no write left running unobserved
