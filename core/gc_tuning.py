"""Garbage-collector settings for long-running processes that allocate many short-lived lists.

Every chunk (in the worker) and every request (in the intake) allocates thousands of short-lived
lists, so CPython's default thresholds run the young collection several times per chunk and a full
collection (a walk of the whole heap) every few seconds. Freezing the start-up heap and collecting
less often keeps that walk short; cyclic garbage is still collected, in larger batches.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (20_000, 20, 100)


def tune_garbage_collector() -> None:
    """Freeze the start-up heap and collect less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
