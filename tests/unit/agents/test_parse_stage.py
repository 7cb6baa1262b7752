"""ParseStage without Kafka: records merged per partition, acked only once their outputs are acked.

The faust topics are stand-ins (a send returns a future the test settles): the stage's batching
and acking are what is tested here; tests/integration/worker/test_batched_stages.py runs it on a
real worker and broker, with a kill -9.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.types import TP

from agents.backlog import SourceProgress
from agents.line_parser import LineParser
from agents.parse import ParseStage
from core.models import P_SID, ParsedChunk, RawBatch, RawChunk, decode_dead_letters, make_raw_line
from core.native import native_module
from core.settings import ParseSettings

RAW = TP("logs.raw", 0)


@dataclass
class Topic:
    sent: list[tuple[int | None, bytes, asyncio.Future[Any]]] = field(default_factory=list)

    async def send(self, value: bytes, partition: int | None = None, key: bytes | None = None) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((partition, value, fut))
        return fut


@dataclass
class Message:
    tp: TP
    offset: int


@dataclass
class Event:
    value: bytes
    message: Message
    acked: bool = False

    def ack(self) -> bool:
        self.acked = True
        return True


def record(stream: str, first: int, count: int = 3, bad: bool = False) -> bytes:
    lines = [make_raw_line(n, b"not json" if bad else orjson.dumps(
        {"time": "2025-06-10T08:25:41.5Z", "traceId": f"t{n}", "msg": "m", "n": n}), "stdout")
        for n in range(first, first + count)]
    return RawChunk({"pod": stream}, stream, 1, lines).encode()


def stage(parsed: Topic, dead: Topic, progress: SourceProgress) -> ParseStage:
    return ParseStage(LineParser(ParseSettings()), parsed, dead, ParseSettings(), compress=lambda data: data,
                      partitions=4, limit_bytes=800_000, progress=progress)


async def take(parse: ParseStage, payloads: list[bytes]) -> list[Event]:
    events = [Event(payload, Message(RAW, offset)) for offset, payload in enumerate(payloads)]
    for event in events:
        parse.add(event.value)
        parse.events.append(event)
    await parse.flush()
    return events


async def test_records_merge_into_one_chunk_per_partition_and_ack_after_their_outputs() -> None:
    parsed, dead, progress = Topic(), Topic(), SourceProgress()
    parse = stage(parsed, dead, progress)
    events = await take(parse, [record(f"s{n}", n * 3) for n in range(40)] + [record("bad", 0, 2, bad=True)])
    partitions = [partition for partition, _, _ in parsed.sent]
    assert sorted(partitions) == [0, 1, 2, 3], "one logs.parsed record per partition for 40 input records"
    lines = [line for _, value, _ in parsed.sent for line in ParsedChunk.decode(value).lines]
    assert len(lines) == 120 and len({line[P_SID] for line in lines}) == 40
    assert [len(decode_dead_letters(value)) for _, value, _ in dead.sent] == [2]
    outputs = [fut for _, _, fut in parsed.sent + dead.sent]
    for fut in outputs[:-1]:
        fut.set_result(None)
    await asyncio.sleep(0)
    assert not any(event.acked for event in events) and RAW not in progress.next_offset
    outputs[-1].set_result(None)
    await asyncio.sleep(0)
    assert all(event.acked for event in events) and progress.next_offset[RAW] == len(events)


async def test_a_record_of_many_streams_merges_with_the_others() -> None:
    """A version 2 record carries several streams (core.models.decode_raw_chunks gives one chunk each)."""
    parsed, dead, progress = Topic(), Topic(), SourceProgress()
    parse = stage(parsed, dead, progress)
    multi = RawBatch(1, [RawChunk.decode(record(f"m{n}", 100 + n * 3)) for n in range(5)]).encode()
    await take(parse, [multi, record("single", 0)])
    lines = [line for _, value, _ in parsed.sent for line in ParsedChunk.decode(value).lines]
    assert len(parsed.sent) <= 4 and len(lines) == 18
    assert {line[P_SID] for line in lines} == {"m0", "m1", "m2", "m3", "m4", "single"}


async def test_a_payload_that_is_no_chunk_is_dead_lettered_and_acked_after_it() -> None:
    parsed, dead, progress = Topic(), Topic(), SourceProgress()
    parse = stage(parsed, dead, progress)
    (event,) = await take(parse, [b"\x00garbage"])
    assert parsed.sent == [] and decode_dead_letters(dead.sent[0][1])[0]["reason"] == "bad_chunk"
    assert not event.acked
    dead.sent[0][2].set_result(None)
    await asyncio.sleep(0)
    assert event.acked


async def test_a_flush_ends_the_producer_linger_once_after_all_its_sends() -> None:
    parsed, dead, progress = Topic(), Topic(), SourceProgress()
    sends_seen: list[tuple[int, int]] = []  # (records sent to logs.parsed, to the dead letters) at each call
    parse = ParseStage(LineParser(ParseSettings()), parsed, dead, ParseSettings(), compress=lambda data: data,
                       partitions=4, limit_bytes=800_000, progress=progress,
                       sent=lambda: sends_seen.append((len(parsed.sent), len(dead.sent))))
    await take(parse, [record(f"s{n}", n * 3) for n in range(40)] + [record("bad", 0, 2, bad=True)])
    assert sends_seen == [(4, 1)], "one call, after the four chunks and the dead letters"
    await parse.flush()  # nothing taken: nothing sent, nothing to end
    assert sends_seen == [(4, 1)]


async def test_under_a_backlog_a_flush_leaves_the_linger_to_gather_the_next_flush() -> None:
    parsed, dead, progress = Topic(), Topic(), SourceProgress()
    calls: list[int] = []
    parse = ParseStage(LineParser(ParseSettings()), parsed, dead, ParseSettings(), compress=lambda data: data,
                       partitions=4, limit_bytes=800_000, progress=progress, sent=lambda: calls.append(1))
    backlog = [True]
    parse.idle = lambda: not backlog[0]
    await take(parse, [record("s", 0)])
    assert parsed.sent and calls == [], "records wait: the producer keeps lingering"
    backlog[0] = False
    await take(parse, [record("s", 3)])
    assert calls == [1]


async def test_records_read_from_their_bytes_and_decoded_ones_send_the_same_and_lose_no_dead_letter() -> None:
    """A record exactly as orjson writes it is read from its bytes; the same record spelled otherwise (white
    space after a line, so its first line's dead letter was already made when the read declines it) is
    decoded: both stages send the same records, and that dead letter exactly once."""
    payloads = [record(f"s{n}", n * 3) for n in range(6)]
    payloads[2] = RawChunk({"pod": "s2"}, "s2", 1, [make_raw_line(6, b"not json", "stdout"),
                                                     *RawChunk.decode(payloads[2]).lines]).encode()
    respelled = [payload.replace(b"]]}", b"] ]}") for payload in payloads]
    assert all(a != b for a, b in zip(payloads, respelled, strict=True))
    if native_module("line_scan") is not None:
        read = LineParser(ParseSettings())
        assert all(read.parse_raw(payload, 4) is not None for payload in payloads), "orjson's records are read"
        assert all(read.parse_raw(payload, 4) is None for payload in respelled), "the others are decoded"
    sent = []
    for batch in (payloads, respelled):
        parsed, dead, progress = Topic(), Topic(), SourceProgress()
        await take(stage(parsed, dead, progress), batch)
        sent.append(([(partition, value) for partition, value, _ in parsed.sent],
                     [decode_dead_letters(value) for _, value, _ in dead.sent]))
    assert sent[0] == sent[1]
    assert [[letter["reason"] for letter in letters] for letters in sent[0][1]] == [["not_json"]]
