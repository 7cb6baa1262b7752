"""The worker's process-wide tuning: the garbage collector runs in large batches on a frozen start-up heap."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.faust_app import GC_THRESHOLDS, tune_garbage_collector


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
