"""Exponential backoff with jitter for reconnecting watches and log streams.

Hundreds of streams break at once when an API server restarts; without jitter they would all
come back in the same instant. Each delay is drawn from [d/2, d] where d doubles per failure up to
the cap ("equal jitter": spread out, yet never zero), and a success resets it.
"""

from __future__ import annotations

import random


class Backoff:
    __slots__ = ("_random", "cap", "failures", "initial")

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = max(cap, initial)
        self.failures = 0
        self._random = rng or random.Random()

    def next_delay(self) -> float:
        ceiling: float = min(self.cap, self.initial * 2.0 ** min(self.failures, 32))
        self.failures += 1
        jitter: float = self._random.random()
        return ceiling / 2 + jitter * ceiling / 2

    def reset(self) -> None:
        self.failures = 0
