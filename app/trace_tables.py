"""Creates and registers the worker's trace table on the App (one place for its options)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import faust

from app.faust_app import LogweaveApp, get_app, get_settings
from core import topics
from core.codec import compressor
from kafka_io.kafka_compat import never_wake_for
from tables.read_cache import ReadCache
from tables.trace_table import TraceWindowTable


@lru_cache(maxsize=1)
def trace_table() -> TraceWindowTable:
    app, settings = get_app(), get_settings()
    table = TraceWindowTable(
        app,
        name=topics.TRACE_TABLE,
        beacon=app.tables.beacon,
        partitions=settings.kafka.partitions,
        key_type=bytes,  # bytes -> the "raw" codec for the table and its changelog topic (never json)
        value_type=bytes,
        schema=faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"),
        recovery_buffer_size=100,
        options={  # faust's RocksDBOptions, per partition database
            "block_cache_size": int(settings.worker.rocksdb_block_cache),
            "write_buffer_size": int(settings.worker.rocksdb_write_buffer),
            "max_write_buffer_number": 2,
        },
        extra_topic_configs={
            "cleanup.policy": "delete",
            "retention.ms": str(int(settings.traces.changelog_retention * 1000)),
        },
        help="Open traces keyed by trace id, with their deadline index",
    )
    table.compress = compressor(settings.kafka.payload_codec)
    table.cache = ReadCache(int(settings.worker.table_read_cache))
    table.persist_interval = float(settings.worker.table_persist_interval)
    # one changelog record (before compression), and a bound on how long one persist holds the event loop
    table.persist_bytes = min(int(settings.worker.table_persist_bytes), int(settings.kafka.max_message_bytes * 0.5))
    fence_table_on_revoke(app, table)
    never_wake_for(table.changelog_topic.get_topic_name())  # its active partitions are written, never read
    app.tables.add(table)
    return table


def fence_table_on_revoke(app: LogweaveApp, table: TraceWindowTable) -> None:
    """The table stops writing when a rebalance begins (tables/trace_table.py, `fence`). Until the revoke
    reaches the event loop, a persist that the consumer thread's rebalance overtook waits."""
    fenced_at = [app.rebalancing_count]

    def fence(revoked: set[Any]) -> None:
        fenced_at[0] = app.rebalancing_count
        table.fence({tp.partition for tp in revoked} | table.partitions_unpersisted())

    app.revoke_hooks.append(fence)
    table.rebalance_unhandled = lambda: bool(app.rebalancing) and app.rebalancing_count != fenced_at[0]
