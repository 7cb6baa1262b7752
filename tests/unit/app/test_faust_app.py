"""The worker's process-wide tuning: the garbage collector runs in large batches on a frozen start-up heap,
and the producer batches records per partition."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from app.faust_app import create_app
from core.gc_tuning import GC_THRESHOLDS, tune_garbage_collector
from core.settings import Settings


@pytest.fixture()
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_gc_is_tuned_and_the_start_up_heap_frozen(restore_gc: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tune_garbage_collector()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
    # Young garbage with cycles is still collected, only less often.
    collected = []

    class Node:
        def __del__(self) -> None:
            collected.append(1)

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    del node
    gc.collect(0)
    assert collected == [1]


def test_the_producer_fills_message_sized_batches_for_the_linger() -> None:
    """faust's own 16 KiB batches hold one chunk record each: records for one partition then wait for
    the in-flight request instead of sharing it (docs/operations.md, CPU)."""
    settings = Settings(kafka={"linger": "25ms", "max_message_bytes": "2MiB"})
    conf = create_app(settings).conf
    assert conf.producer_linger == pytest.approx(0.025)
    assert conf.producer_max_batch_size == settings.kafka.max_message_bytes == 2 * 1024 * 1024


@pytest.mark.parametrize("linger", ["2s", "-5ms"])
def test_a_linger_out_of_range_is_refused_by_name(linger: str) -> None:
    with pytest.raises(ValidationError, match=r"kafka\.linger"):
        Settings(kafka={"linger": linger})


def test_the_worker_fetches_again_records_faust_dropped_mid_batch() -> None:
    from faust.transport.drivers.aiokafka import Consumer

    create_app(Settings())
    assert Consumer.getmany.__module__ == "app.fetch_rewind"


def test_the_worker_counts_a_refused_commit_as_not_made() -> None:
    from faust.transport.drivers.aiokafka import Consumer

    create_app(Settings())
    assert Consumer._commit_offsets.__module__ == "app.refused_commits"


def test_traces_close_only_while_no_rebalance_restores_the_table() -> None:
    """faust's recovery `completed` is set at the first recovery and never cleared: the close check
    must also wait out every later rebalance, whose recovery restores partitions from the changelog."""
    from app.faust_app import table_restored

    app = create_app(Settings())
    app.tables.recovery.completed.set()  # the first recovery finished
    assert table_restored(app)
    app.on_rebalance_start()  # a later rebalance: partitions are revoked, assigned and restored
    assert app.tables.recovery.completed.is_set() and not table_restored(app)
    app.on_rebalance_end()  # faust calls it once recovery is over and the streams resume
    assert table_restored(app)
