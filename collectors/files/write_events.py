"""Whether the read loop takes inotify's per-write events or looks at every followed file each pass.

Per-write events let a pass skip the files nobody wrote, so a node's thousand quiet files cost
nothing between their writes. On a node where nearly every followed file is written between two
passes they tell a pass nothing it would not find by looking at every file, and taking them is pure
cost: one event per write, read and parsed in Python, and a loop wake-up every REARM_SECONDS. That
was 13% of the file collector's CPU with 200 files written 50 lines/s each (py-spy), where every pass
finds new lines in every file.

So the loop turns them off once most files (HOT_SHARE) had new lines in each of PASSES passes running,
and on again once fewer than COOL_SHARE had in as many passes; the gap between the two keeps it from
flapping. While they are off every pass looks at every file (what the loop does without inotify), and
the first pass after they are turned on does too, as writes made meanwhile were not reported.
Entry events (created, renamed, deleted) are taken throughout. Fewer than MIN_FILES followed files
never switch: their events cost little.
"""

from __future__ import annotations

HOT_SHARE = 0.75  # of the followed files with new lines in a pass: take no write events from here on
COOL_SHARE = 0.5  # below this, write events let passes skip enough files to pay for themselves
PASSES = 10  # passes in a row on one side before switching (a pass every `collector.linger` or so)
MIN_FILES = 32


class WriteEventsPolicy:
    """Decides, pass by pass, whether per-write events are worth taking (see the module docstring)."""

    def __init__(self) -> None:
        self.streak = 0  # passes in a row that leaned towards switching

    def decide(self, taking: bool, followed: int, fresh: int) -> bool:
        """Whether to take write events after a pass that found new lines in `fresh` of the `followed`
        files, events being taken (`taking`) or not during that pass."""
        if followed < MIN_FILES:
            self.streak = 0
            return True
        share = fresh / followed
        leaning = share >= HOT_SHARE if taking else share < COOL_SHARE
        self.streak = self.streak + 1 if leaning else 0
        if self.streak < PASSES:
            return taking
        self.streak = 0
        return not taking
