"""Lines of one long-lived stream (a forward or syslog TCP connection, the syslog UDP socket),
gathered for up to `linger` or `max_lines` and stored as one chunk.

Positions count up for the life of the stream, so its stream id is never reused for a new position
space. Lines whose sender asked for no acknowledgement are still never dropped on a Kafka outage
when `retry` is set: `flush` keeps trying while the caller (and so the socket) waits, which is the
backpressure. UDP cannot wait (the kernel drops what is not read): there `retry` is off and lines
Kafka did not take are counted as dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from collectors.intake.context import IntakeContext
from collectors.intake.delivery import BrokerUnavailable, Overloaded
from collectors.intake.lines import build_chunk
from core.models import RawLine

log = logging.getLogger(__name__)


class LingerStream:
    def __init__(self, ctx: IntakeContext, protocol: str, sid: str, max_lines: int, linger: float,
                 retry: bool = True) -> None:
        self.ctx = ctx
        self.protocol = protocol
        self.sid = sid
        self.max_lines = max_lines
        self.linger = linger
        self.retry = retry
        self.position = 0
        self.pending: list[RawLine] = []
        self.source: dict[str, Any] = {}
        self.since = 0.0

    def take_positions(self, count: int) -> int:
        """Reserve `count` positions; the first one."""
        first = self.position
        self.position += count
        return first

    async def add(self, lines: list[RawLine], source: dict[str, Any]) -> None:
        if self.pending and source != self.source:
            await self.flush()
        if lines and not self.pending:
            self.since, self.source = time.monotonic(), source
        self.pending.extend(lines)
        if len(self.pending) >= self.max_lines:
            await self.flush()

    def seconds_left(self) -> float | None:
        """Until the pending lines are due (None: nothing pending)."""
        if not self.pending:
            return None
        return max(0.0, self.since + self.linger - time.monotonic())

    async def flush(self) -> None:
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        chunk = build_chunk(self.source, self.sid, lines)
        while True:
            try:
                await self.ctx.delivery.store([chunk], self.protocol)
                self.ctx.metrics.requests.labels(self.protocol, "stored").inc()
                return
            except (BrokerUnavailable, Overloaded) as exc:
                if not self.retry:
                    self.ctx.metrics.reject(self.protocol, "dropped_unavailable", len(lines))
                    log.warning("%s: %d lines dropped, Kafka did not take them (%s)", self.protocol, len(lines), exc)
                    return
                log.warning("%s: %d lines not stored yet (%s); retrying", self.protocol, len(lines), exc)
                await asyncio.sleep(self.ctx.settings.retry_after)
