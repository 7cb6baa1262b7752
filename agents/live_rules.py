"""The parse and routing rules versions a worker holds, and which one applies to a chunk.

Every worker reads the compacted `config.rules` topic from its start (kafka_io/rules_topic.py) and
hands each record to `LiveRules.apply`. A version is built in full - parsers compiled, routing rules
validated - before it is taken; a version that fails is refused (logged, counted in
`logweave_rules_refused_total`, shown on the stats page) and the versions held stay.

Why versions have an effective point: workers read the topic at their own pace, so a version applied
"when read" would be applied by two workers at different moments, and a chunk parsed or routed in
between would get different rules depending on which worker took it (or whether a rebalance moved
it). `logweave rules publish` stamps each record with `effective_from_ns`, a collection time a few
seconds ahead (`--switch-after`). Every chunk carries its collection time (the raw chunk's `ct`, copied
into its parsed chunks), and every worker parses and routes a chunk by the version in effect at that
time: the same version on every worker, whatever moment it reads the chunk or the record. The switch
falls between chunks of a stream (a chunk has one collection time), so no chunk is split between two
versions. A record without the field (another tool) takes effect from the time the worker reads it.

A worker keeps the last MAX_VERSIONS versions, so a backlog collected before a switch is still
handled by the version of its time. A chunk collected more than MAX_AHEAD_NS ahead of the worker's
clock (a collector's clock off) still gets the version of its time, but counts only as that far ahead
for what follows, so one bad clock cannot make every later version late. A record read after chunks
collected past its effective point were already handled is late: it is applied from its point on for
what comes next, and logged and counted (`logweave_rules_late_total`), since those chunks cannot be
redone. Every worker reports the version of the newest chunk it handled, or the one in effect now if
that is later, in `logweave_rules_version_info{version}` and on the stats page.

A starting worker reads every version the topic holds before its stages take a chunk (`wait_loaded`):
a restarted worker with a backlog used to parse and route its first chunks by its own settings' rules
while its follower was still reading the topic, then logged the version in effect as late.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson

from agents.line_parser import LineParser, RawParse
from agents.log_metrics import LogMetrics, log_metrics_for
from agents.routing import Router
from core.errors import ConfigError
from core.metrics import LOG_METRICS, RULES_LATE, RULES_REFUSED, RULES_VERSION
from core.models import DeadLetter, ParsedChunk, RawChunk
from core.rules import decode_record
from core.settings import Settings
from kafka_io.rules_topic import ReadAtStart, follow_rules_forever

log = logging.getLogger(__name__)
STARTUP = "startup"  # the rules of the worker's own settings, before any published version
MAX_VERSIONS = 8
MAX_AHEAD_NS = 300 * 1_000_000_000  # collection times further ahead of this worker's clock count as this far


@dataclass(slots=True)
class Version:
    name: str
    effective_from_ns: int  # collection time from which it applies (STARTUP: -1, always)
    parser: LineParser
    router: Router
    metrics: LogMetrics | None  # metrics from logs (agents/log_metrics.py); None: no rules


class VersionedParser:
    """The parse stage's parser: each chunk parsed by the version in effect at its collection time, and
    that time written into its parsed chunks so the group stage routes them by the same version."""

    def __init__(self, rules: LiveRules) -> None:
        self.rules = rules

    def parse_chunk(self, chunk: RawChunk, partitions: int) -> tuple[dict[int, ParsedChunk], list[DeadLetter]]:
        point = chunk.collected_ns if type(chunk.collected_ns) is int else None
        outputs, dead = self.rules.at(point).parser.parse_chunk(chunk, partitions)
        if point is not None:
            for out in outputs.values():
                out.collected_ns = point
        return outputs, dead

    def parse_raw(self, payload: bytes, partitions: int) -> RawParse | None:
        """`LineParser.parse_raw` by the newest version held, its collection time marked. None when the record
        was collected before that version took effect (or is not read from its bytes): it is then decoded,
        and its time picks its version (`parse_chunk`); this is rare, around a switch."""
        newest = self.rules.versions[-1]
        got = newest.parser.parse_raw(payload, partitions)
        if got is None or self.rules.at(got.collected_ns) is not newest:  # `at` notes the newest time handled
            return None
        got.mark_ns = got.collected_ns
        return got

    def __getattr__(self, name: str) -> Any:  # settings, sources, ...: those of the version in effect now
        return getattr(self.rules.at(None).parser, name)


class LiveRules:
    """The versions held, oldest first, and the newest collection time handled."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        router, metrics = Router(settings.routing, settings.sinks.enabled), log_metrics_for(settings.log_metrics)
        self.versions = [Version(STARTUP, -1, LineParser(settings.parse), router, metrics)]
        self._starts = [-1]  # effective_from_ns of each version, for bisect
        self.newest_point = -1  # the latest collection time a chunk was parsed or routed at
        # the parse stage calls only parse_chunk, which VersionedParser has: it stands in for a LineParser
        self.parser = cast(LineParser, VersionedParser(self))
        self.refused: list[tuple[str, str]] = []  # (version or '?', why), most recent last
        self.late: list[str] = []  # versions read after chunks past their effective point were handled
        self._listeners: list[Callable[[LiveRules], None]] = []
        self._reported = STARTUP
        self.read_at_start = ReadAtStart()  # what the stages wait for (wait_loaded)
        RULES_VERSION.labels(STARTUP).set(1)

    @property
    def loaded(self) -> bool:
        """Whether every version the rules topic held when this worker started has been read."""
        return self.read_at_start.done

    def mark_loaded(self) -> None:
        """The follower read the topic to where it ended at start (idempotent)."""
        if not self.read_at_start.done:
            log.info("rules topic read; version %s in effect", self.version)
        self.read_at_start.mark()

    async def wait_loaded(self, stage: str) -> None:
        """Return once the rules topic has been read (`mark_loaded`), warning meanwhile: a stage must not take
        a chunk by rules older than those published."""
        await self.read_at_start.wait(f"{stage} stage")

    @property
    def version(self) -> str:
        """The version in effect now."""
        return self.at(None).name

    @property
    def router(self) -> Router:
        """The router of the version in effect now (a chunk is routed by `router_at` its collection time)."""
        return self.at(None).router

    def at(self, point: int | None) -> Version:
        """The version in effect at collection time `point` (None: now, or the newest point handled)."""
        if point is None:
            point = max(time.time_ns(), self.newest_point)
        elif point > self.newest_point:  # a collector whose clock runs far ahead must not hold back every switch
            self.newest_point = min(point, time.time_ns() + MAX_AHEAD_NS)
        return self.versions[max(bisect.bisect_right(self._starts, point) - 1, 0)]

    def report(self) -> str:
        """Update `logweave_rules_version_info` to the version in effect now; its name."""
        name = self.at(None).name
        if name != self._reported:
            RULES_VERSION.clear()
            RULES_VERSION.labels(name).set(1)
            log.info("rules version %s in effect (was %s)", name, self._reported)
            self._reported = name
        return name

    def router_at(self, point: int | None) -> Router:
        return self.at(point).router

    def metrics_at(self, point: int | None) -> LogMetrics | None:
        return self.at(point).metrics

    def on_switch(self, listener: Callable[[LiveRules], None]) -> None:
        """`listener(self)` after every version taken."""
        self._listeners.append(listener)

    def apply(self, value: bytes, now_ns: int | None = None) -> bool:
        """Take the rules record `value`; False (and nothing changed) if it is refused."""
        try:
            document, effective = decode_record(value)
            version = document.name()
            if version == self.versions[-1].name:
                return True  # read again (a restarted follower, a re-publish)
            merged = document.merged(self.settings)
            parser = LineParser(merged.parse)
            router = Router(merged.routing, merged.sinks.enabled)
            metrics = log_metrics_for(merged.log_metrics)
        except (ConfigError, ValueError) as exc:
            why = str(exc).splitlines()[0]
            self.refused = [*self.refused[-9:], (_version_of(value), why)]
            RULES_REFUSED.inc()
            log.error("rules version %s refused, still running %s: %s", _version_of(value), self.version, why)
            return False
        now = time.time_ns() if now_ns is None else now_ns
        if effective is None:  # not stamped: from now on, or after what was already handled
            effective = max(now, self.newest_point + 1)
        elif effective <= self.newest_point:
            self.late = [*self.late[-9:], version]
            RULES_LATE.inc()
            log.warning("rules version %s arrived after chunks collected past its effective point were handled "
                        "(%.1f s late); it applies from the next chunk on (raise `rules publish --switch-after`)",
                        version, (self.newest_point - effective) / 1e9)
        self._add(Version(version, max(effective, 0), parser, router, metrics))
        log.info("rules version %s takes effect for chunks collected from %s", version,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(effective / 1e9)))
        for listener in self._listeners:
            listener(self)
        self.report()
        return True

    def _add(self, version: Version) -> None:
        """Insert `version`; versions that were to start at or after it are superseded."""
        kept = self.versions[:bisect.bisect_left(self._starts, version.effective_from_ns)]  # never empty: [0] is -1
        version.router.inherit(kept[-1].router)  # traces held under a rule this one drops still get delivered
        self.versions = [*kept, version][-MAX_VERSIONS:]
        self._starts = [v.effective_from_ns for v in self.versions]
        self._starts[0] = -1  # the oldest held applies to anything older
        LOG_METRICS.retain(store for v in self.versions if v.metrics is not None for store in v.metrics.stores())


async def follow(settings: Settings, rules: LiveRules, report_every: float = 1.0) -> None:
    """Take every rules version published to `config.rules`, reconnecting after broker errors; report the
    version in effect as time passes its effective point, even while no chunk arrives."""
    stop = asyncio.Event()
    follower = asyncio.ensure_future(follow_rules_forever(settings, rules.apply, stop, caught_up=rules.mark_loaded))
    try:
        while not follower.done():
            rules.report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(follower), report_every)
    finally:
        stop.set()
        follower.cancel()


def _version_of(value: bytes) -> str:
    try:
        found = orjson.loads(value).get("version")
        return str(found) if found else "?"
    except (ValueError, AttributeError):
        return "?"
