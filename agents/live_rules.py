"""The parse and routing rules a worker runs now, switched between chunks when a new version arrives.

Every worker reads the compacted `config.rules` topic from its start (kafka_io/rules_topic.py) and
hands each record to `LiveRules.apply`. A version is built in full - parsers compiled, routing rules
validated - before anything switches; a version that fails is refused (logged, counted in
`logweave_rules_refused_total`, shown on the stats page) and the running one stays. The stages read
`parser` and `router` once per chunk, and `apply` runs on the same event loop between chunks, so a
switch always falls on a chunk boundary; every worker reports the version it runs in
`logweave_rules_version_info{version}` and on the stats page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson

from agents.line_parser import LineParser
from agents.routing import Router
from core.errors import ConfigError
from core.metrics import RULES_REFUSED, RULES_VERSION
from core.rules import decode_rules
from core.settings import Settings
from kafka_io.rules_topic import follow_rules_forever

log = logging.getLogger(__name__)
STARTUP = "startup"  # the rules of the worker's own settings, before any published version


class LiveRules:
    """The current LineParser and Router, and which version they are."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.parser = LineParser(settings.parse)
        self.router = Router(settings.routing, settings.sinks.enabled)
        self.version = STARTUP
        self.refused: list[tuple[str, str]] = []  # (version or '?', why), most recent last
        self._listeners: list[Callable[[LiveRules], None]] = []
        RULES_VERSION.labels(STARTUP).set(1)

    def on_switch(self, listener: Callable[[LiveRules], None]) -> None:
        self._listeners.append(listener)

    def apply(self, value: bytes) -> bool:
        """Switch to the rules record `value`; False (and nothing changed) if it is refused."""
        try:
            document = decode_rules(value)
            version = document.name()
            if version == self.version:
                return True
            merged = document.merged(self.settings)
            parser = LineParser(merged.parse)
            router = Router(merged.routing, merged.sinks.enabled)
            router.inherit(self.router)  # traces held under a rule this version drops still get delivered
        except (ConfigError, ValueError) as exc:
            why = str(exc).splitlines()[0]
            self.refused = [*self.refused[-9:], (_version_of(value), why)]
            RULES_REFUSED.inc()
            log.error("rules version %s refused, still running %s: %s", _version_of(value), self.version, why)
            return False
        RULES_VERSION.clear()
        RULES_VERSION.labels(version).set(1)
        log.info("rules version %s replaces %s", version, self.version)
        self.parser, self.router, self.version = parser, router, version
        for listener in self._listeners:
            listener(self)
        return True


async def follow(settings: Settings, rules: LiveRules) -> None:
    """Apply every rules version published to `config.rules`, reconnecting after broker errors."""
    await follow_rules_forever(settings, rules.apply, asyncio.Event())


def _version_of(value: bytes) -> str:
    try:
        found = orjson.loads(value).get("version")
        return str(found) if found else "?"
    except (ValueError, AttributeError):
        return "?"
