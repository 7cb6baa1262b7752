"""A collector's multiline rules, switched while it runs when a new rules version is published.

Both collectors follow the compacted `config.rules` topic (kafka_io/rules_topic.py) like the workers,
through this one class: a version arrives in the background (`offer`), is decoded and validated when
the collector applies it (`apply_pending`, at a point where switching splits no chunk), and its
multiline rules are handed to the collector's `switch`, which moves every followed file or stream to
the rule that now applies to it. A version without a `multiline` section leaves the rules as they
are; an unreadable one is refused, logged and counted, and the running version stays. The version
in effect is the one label of the collector's `..._rules_version_info` gauge (value 1), which its
heartbeat reports (core/heartbeat_figures.py).

A starting collector reads the versions the topic holds before it reads a line (`wait_loaded`), for at
most `kafka.connect_timeout`: a restart over a backlog used to join its first lines by the collector's
own settings while the follower caught up. Past that bound it collects and applies the version when it
comes, with a warning: its lines wait in files and streams, not in its memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge

from core.errors import ConfigError
from core.rule_settings import MultilineRule
from core.rules import decode_rules
from kafka_io.rules_topic import ReadAtStart

log = logging.getLogger(__name__)
Switch = Callable[[list[MultilineRule]], Awaitable[None]]


class LiveMultilineRules:
    """The rules version a collector runs, and the next one published, until it is applied."""

    def __init__(self, switch: Switch, version_gauge: Gauge, refused: Counter) -> None:
        self._switch = switch
        self._gauge = version_gauge
        self._refused = refused
        self.version = "startup"
        self._pending: bytes | None = None
        self.arrived = asyncio.Event()
        self.read_at_start = ReadAtStart()  # the versions the topic held at start were offered
        version_gauge.labels(self.version).set(1)

    def mark_loaded(self) -> None:
        """The follower read the topic to where it ended at start, or found no topic (idempotent)."""
        self.read_at_start.mark()

    async def wait_loaded(self, timeout: float, stop: asyncio.Event) -> None:
        """Wait up to `timeout` (or until `stop`) for the versions published before this start, then
        apply the latest."""
        await self.read_at_start.wait("collector (kafka.connect_timeout bounds the wait)", timeout, stop)
        await self.apply_pending()

    def offer(self, value: bytes) -> None:
        """A published version (from the topic's follower); applied at the next `apply_pending`."""
        self._pending = value
        self.arrived.set()

    async def apply_pending(self) -> None:
        self.arrived.clear()
        value, self._pending = self._pending, None
        if value is None:
            return
        try:
            document = decode_rules(value)
        except ConfigError as exc:
            self._refused.inc()
            log.error("rules version refused, still running %s: %s", self.version, exc)
            return
        if document.name() == self.version:
            return
        if document.multiline is not None:
            await self._switch(document.multiline.rules)
        self._gauge.clear()
        self._gauge.labels(document.name()).set(1)
        log.info("rules version %s replaces %s", document.name(), self.version)
        self.version = document.name()

    async def apply_as_offered(self, stop: asyncio.Event) -> None:
        """For a collector without a read-pass loop of its own: apply each version as it arrives (the
        collector's `switch` then defers each stream's change to that stream's next chunk boundary)."""
        while not stop.is_set():
            await self.arrived.wait()
            await self.apply_pending()
