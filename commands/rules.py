"""`logweave rules publish FILE` and `logweave rules watch FILE`: validate rules, then hand them to every worker.

A version is checked exactly as a worker will build it (parsers compiled, routing and transforms
validated against the effective settings) and only then sent to the compacted `config.rules` topic.
`watch` does that on SIGHUP and whenever the file changes (a ConfigMap update); a bad version is
refused with one line naming the file and the problem, and the published version stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from agents.line_parser import LineParser
from agents.routing import Router
from core.errors import ConfigError
from core.rules import RulesDocument, load_rules_file
from core.settings import Settings
from kafka_io.rules_topic import publish_rules

log = logging.getLogger(__name__)
# how far ahead of now a published version takes effect (collection time): every worker must have read
# it before it handles a chunk collected after that (agents/live_rules.py); the rules topic is polled
# every second, so a few seconds cover a busy broker
SWITCH_AFTER = 10.0


def stamped(document: RulesDocument, switch_after: float) -> bytes:
    """The record of `document`, taking effect for chunks collected `switch_after` seconds from now."""
    return document.encode(time.time_ns() + int(switch_after * 1e9))


def validated(settings: Settings, path: Path) -> RulesDocument:
    """The rules of `path`, built once as a worker would build them; ConfigError if they would fail."""
    document = load_rules_file(path)
    try:
        merged = document.merged(settings)
        LineParser(merged.parse)
        Router(merged.routing, merged.sinks.enabled)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"rules file {path}: {str(exc).splitlines()[0]}") from None
    return document


async def publish(settings: Settings, path: Path, switch_after: float = SWITCH_AFTER) -> str:
    document = validated(settings, path)
    offset = await publish_rules(settings, stamped(document, switch_after))
    log.info("published rules version %s (offset %d); every worker applies it to chunks collected from %.0f s on",
             document.name(), offset, switch_after)
    return document.name()


async def watch(settings: Settings, path: Path, stop: asyncio.Event, interval: float = 1.0,
                switch_after: float = SWITCH_AFTER) -> None:
    """Publish `path` now, on SIGHUP and on every change, until `stop`; refuse bad versions."""
    hangup = asyncio.Event()
    loop = asyncio.get_running_loop()
    # not the main thread (tests): file changes still count
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, hangup.set)
    published, seen = "", None
    while not stop.is_set():
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp != seen or hangup.is_set():
            seen = stamp
            hangup.clear()
            try:
                document = validated(settings, path)
                if document.name() != published:
                    offset = await publish_rules(settings, stamped(document, switch_after))
                    published = document.name()
                    log.info("published rules version %s (offset %d), in effect for chunks collected from "
                             "%.0f s on", published, offset, switch_after)
            except ConfigError as exc:
                log.error("refused: %s; workers keep version %s", exc, published or "(none published)")
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hangup.wait())]
        await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
