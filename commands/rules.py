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
from pathlib import Path

from agents.line_parser import LineParser
from agents.routing import Router
from core.errors import ConfigError
from core.rules import RulesDocument, load_rules_file
from core.settings import Settings
from kafka_io.rules_topic import publish_rules

log = logging.getLogger(__name__)


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


async def publish(settings: Settings, path: Path) -> str:
    document = validated(settings, path)
    offset = await publish_rules(settings, document.encode())
    log.info("published rules version %s (offset %d)", document.name(), offset)
    return document.name()


async def watch(settings: Settings, path: Path, stop: asyncio.Event, interval: float = 1.0) -> None:
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
                    offset = await publish_rules(settings, document.encode())
                    published = document.name()
                    log.info("published rules version %s (offset %d)", published, offset)
            except ConfigError as exc:
                log.error("refused: %s; workers keep version %s", exc, published or "(none published)")
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hangup.wait())]
        await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
