"""The worker's Python peer: quixstreams doing the worker's two hops on the same raw chunks.

quixstreams (confluent-kafka / librdkafka underneath, RocksDB state) is the stream-processing
library a team would reach for instead of Logweave's faust worker, so `make bench` prints it beside
the worker's "parse + group + route" row, on the same broker kind, input and chunk size, in the same
round (tests/bench/bench_worker.py).

- hop 1, parse: each `logs.raw` record is decompressed (core.codec.decompress: the lz4/zstd frame
  the collectors may apply, nothing of Logweave's parsing) and decoded with orjson (chunk versions 1
  and 2, docs/chunk-format.md); every line's JSON is parsed with orjson to read `traceId` and `time`;
  lines are re-chunked by trace partition (crc32, as the worker) and produced, lz4-compressed as the
  worker's payloads, to `<prefix>parsed`, keyed by the partition so a trace always meets itself.
- hop 2, group + route: each parsed chunk updates RocksDB state once per trace it carries (count,
  first and last time) through quixstreams' State, with its changelog topic (the worker's table has
  one too), and is produced re-encoded to `<prefix>sink`.
Left out, so the peer does less than the worker: no dead letters (a line without a trace id is
dropped and counted), no time parsing (the ISO text is kept and compared as text), no level or
service normalization, no dedupe on line identity, no trace windows, closes or closed summaries,
no routing rules (one output topic), no metrics page.

It runs in its own virtualenv, `.venv-quixstreams` (`make bench` makes it from
tests/bench/quixstreams-peer.txt): quixstreams 3.x pins pydantic below the runtime lock's, and the
worker must be measured on the lock. It imports core.codec and core.models (stdlib, orjson, lz4)
through PYTHONPATH. Progress: the lines routed by hop 2, written to `--progress` every 0.1 s.
Against the embedded broker (noida-db) it runs with its defaults: at-least-once (as the worker),
topics and the changelog created through the admin API; nothing had to be configured around.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, State
from quixstreams.models import TopicConfig
from quixstreams.models.serializers import SerializationContext, Serializer

from core.codec import compressor, decompress
from core.models import trace_partition

PARTITIONS = 4
compress = compressor("lz4")


class PayloadSerializer(Serializer):
    """Values leave hop 1 as (key, payload) pairs: the key goes to `to_topic(key=...)`, this writes the payload."""

    def __call__(self, value: tuple[str, bytes], ctx: SerializationContext) -> bytes:
        return value[1]


class Progress:
    """Lines routed by hop 2 (and lines dropped for want of a trace id), written to a file the bench
    reads every 0.1 s by a daemon thread (so the last lines show even when no record follows them)."""

    def __init__(self, path: Path) -> None:
        self.path, self.routed, self.dropped = path, 0, 0
        threading.Thread(target=self._write_every, args=(0.1,), daemon=True).start()

    def add(self, routed: int, dropped: int = 0) -> None:
        self.routed += routed
        self.dropped += dropped

    def _write_every(self, seconds: float) -> None:
        written = (-1, -1)
        while True:
            time.sleep(seconds)
            now = (self.routed, self.dropped)
            if now != written:
                scratch = self.path.with_suffix(".tmp")
                scratch.write_text(f"{now[0]} {now[1]}\n")
                os.replace(scratch, self.path)
                written = now


def segments(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The streams of one raw record: version 1 is one stream, version 2 a list of them."""
    return doc["segs"] if doc.get("v") == 2 else [doc]


def build(broker: str, input_topic: str, prefix: str, state_dir: Path, progress: Progress) -> Application:
    app = Application(broker_address=broker, consumer_group=f"{prefix}quixstreams-peer", auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING", processing_guarantee="at-least-once")
    config = TopicConfig(num_partitions=PARTITIONS, replication_factor=1)
    raw = app.topic(input_topic, key_deserializer="bytes", value_deserializer="bytes", config=config)
    parsed = app.topic(f"{prefix}parsed", key_serializer="str", value_serializer=PayloadSerializer(),
                       key_deserializer="str", value_deserializer="bytes", config=config)
    sink = app.topic(f"{prefix}sink", key_serializer="str", value_serializer="bytes", config=config)

    def parse(value: bytes) -> list[tuple[str, bytes]]:
        by_partition: dict[int, list[list[Any]]] = defaultdict(list)
        dropped = 0
        for segment in segments(orjson.loads(decompress(value))):
            sid = segment["sid"]
            for entry in segment["lines"]:
                doc = orjson.loads(entry[1])
                trace = doc.get("traceId") if isinstance(doc, dict) else None
                if not isinstance(trace, str):
                    dropped += 1
                    continue
                by_partition[trace_partition(trace, PARTITIONS)].append([trace, doc.get("time"), sid, entry[0],
                                                                         entry[1]])
        progress.add(0, dropped)
        return [(str(partition), compress(orjson.dumps({"lines": lines}))) for partition, lines in by_partition.items()]

    def group(value: bytes, state: State) -> bytes:
        lines = orjson.loads(decompress(value))["lines"]
        seen: dict[str, list[Any]] = {}
        for trace, stamp, _sid, _pos, _text in lines:
            found = seen.get(trace)
            if found is None:
                seen[trace] = [1, stamp, stamp]
            else:
                found[0] += 1
                found[1] = min(found[1], stamp)
                found[2] = max(found[2], stamp)
        for trace, fresh in seen.items():  # one state read and write per trace per chunk
            stored = state.get(trace)
            state.set(trace, fresh if stored is None else
                      [stored[0] + fresh[0], min(stored[1], fresh[1]), max(stored[2], fresh[2])])
        progress.add(len(lines))
        return compress(orjson.dumps({"lines": lines}))

    app.dataframe(raw).apply(parse, expand=True).to_topic(parsed, key=lambda pair: pair[0])
    app.dataframe(parsed).apply(group, stateful=True).to_topic(sink)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--input", default="logs.raw")
    parser.add_argument("--prefix", default="qx.")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--progress", type=Path, required=True)
    args = parser.parse_args()
    progress = Progress(args.progress)
    build(args.broker, args.input, args.prefix, args.state_dir, progress).run()


if __name__ == "__main__":
    main()
