"""Live tail: new lines of a sink topic (`sink.<name>`) that match the query's filters, as they come.

The tail reads the same records the sink's drain consumes, with a group-less consumer from the end
of every partition, so it adds no consumer group, commits nothing and never delays the drain. Lines
are matched in the API process: the filters of /query (service, level, namespace, pod, trace_id) and
`q` as words that must all appear in the message (case-insensitive), without the time range.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from core import topics
from core.models import (
    MESSAGE_FIELDS,
    P_LEVEL,
    P_POS,
    P_SERVICE,
    P_SID,
    P_SRC,
    P_TEXT,
    P_TIME,
    P_TRACE,
    ParsedChunk,
    stream_digest,
)
from core.settings import Settings
from kafka_io.range_reader import follow_topic, range_consumer
from query.backend import StoredLine
from query.params import LogQuery

_WORD = re.compile(r"\w+")


def lines_of_chunk(value: bytes, reserved_key: str) -> list[StoredLine]:
    """The lines of one sink-topic record, shaped as the stores return them."""
    chunk = ParsedChunk.decode(value)
    out = []
    for line in chunk.lines:
        try:
            doc = orjson.loads(line[P_TEXT])
        except orjson.JSONDecodeError:
            doc = {"text": line[P_TEXT]}
        doc.pop(reserved_key, None)
        source: dict[str, Any] = chunk.sources[line[P_SRC]]
        message = next((doc[k] for k in MESSAGE_FIELDS if isinstance(doc.get(k), str)), "")
        tags = doc.get("tags")
        out.append(StoredLine(line[P_TIME] // 1000 * 1000, f"{stream_digest(line[P_SID])}-{line[P_POS]:x}",
                              line[P_TRACE], line[P_SERVICE], line[P_LEVEL], message,
                              str(source.get("namespace", "")), str(source.get("pod", "")),
                              str(source.get("container", "")), str(source.get("node", "")), doc,
                              [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []))
    return out


def matches(line: StoredLine, query: LogQuery) -> bool:
    for name in ("service", "level", "namespace", "pod"):
        wanted: list[str] = getattr(query, name)
        if wanted and getattr(line, name) not in wanted:
            return False
    if query.trace_id and line.trace_id != query.trace_id:
        return False
    if query.text:
        words = {w.lower() for w in _WORD.findall(line.message)}
        return all(w.lower() in words for w in _WORD.findall(query.text))
    return True


def tail_topic(settings: Settings) -> str:
    sink = settings.api.tail_sink or settings.api.backend
    return settings.topic(topics.sink_topic(sink))


async def tail(settings: Settings, query: LogQuery) -> AsyncIterator[list[StoredLine]]:
    """Batches of matching new lines; the first (empty) batch means the tail is live."""
    consumer = range_consumer(settings)
    await consumer.start()
    try:
        async for records in follow_topic(consumer, tail_topic(settings)):
            found = [line for record in records
                     for line in lines_of_chunk(record.value, settings.parse.reserved_key) if matches(line, query)]
            yield found
    finally:
        await consumer.stop()
