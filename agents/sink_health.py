"""What one sink is doing, in one word and its last error, and how old its oldest unwritten record is.

A sink that never started used to look healthy: its breaker stayed closed (no write had failed),
and lag counted from where faust had read ahead, not from what was written. DrainRunner reports
every transition here; the web views and `/readyz` read it, and two gauges carry it to Prometheus:
`logweave_sink_state` (0 starting, 1 ready, 2 failing, 3 open) and
`logweave_sink_oldest_unwritten_seconds`, the age (by the sink topic's record timestamps) of the
oldest record handed to the sink and not yet confirmed written. An alert on that age fires long
before the topic's retention deletes records the sink never wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum

from core.metrics import SINK_OLDEST_UNWRITTEN, SINK_STATE


class SinkState(IntEnum):
    STARTING = 0  # the sink has not started yet (its server is unreachable, or start is retrying)
    READY = 1  # started, and its last write succeeded (or none was needed yet)
    FAILING = 2  # its last write failed; retrying with backoff
    OPEN = 3  # the circuit breaker is open: writes wait before the next probe


@dataclass
class SinkHealth:
    """One sink's state, last error, and the timestamp of its oldest record in hand, unwritten."""

    name: str
    state: SinkState = SinkState.STARTING
    last_error: str = ""
    last_written: float | None = None  # wall time of the last confirmed write
    oldest_pending: float | None = None  # record timestamp (s) of the oldest record being delivered

    def __post_init__(self) -> None:
        self._publish()

    def set(self, state: SinkState, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            self.last_error = error
        self._publish()

    def written(self) -> None:
        self.last_written = time.time()
        self.set(SinkState.READY)

    def pending(self, oldest_timestamp: float | None) -> None:
        self.oldest_pending = oldest_timestamp
        self.publish_age()

    def oldest_unwritten_seconds(self, now: float | None = None) -> float:
        if self.oldest_pending is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest_pending)

    def publish_age(self) -> None:
        SINK_OLDEST_UNWRITTEN.labels(self.name).set(self.oldest_unwritten_seconds())

    def _publish(self) -> None:
        SINK_STATE.labels(self.name).set(self.state)

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state.name.lower(), "last_error": self.last_error, "last_written": self.last_written,
                "oldest_unwritten_seconds": round(self.oldest_unwritten_seconds(), 3)}
