"""The file collector's multiline rules, switched while it runs when a new rules version is published.

The collector follows the compacted `config.rules` topic (kafka_io/rules_topic.py) like the workers.
A version arrives in the background and is applied between read passes, so between chunks: files a
rule now covers start joining (an open record continues under the new rule), files no rule covers
any more send their open records and stop. A version without a `multiline` section leaves the rules
as they are; an unreadable one is refused and counted. The version runs is reported in
`logweave_file_collector_rules_version_info`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from collectors.multiline import MultilineJoiner, rule_for
from core.errors import ConfigError
from core.rule_settings import MultilineRule
from core.rules import decode_rules

if TYPE_CHECKING:
    from collectors.files.collector import FileCollector

log = logging.getLogger(__name__)


class CollectorRules:
    def __init__(self, collector: FileCollector) -> None:
        self.collector = collector
        self.version = "startup"
        self._pending: bytes | None = None
        collector.metrics.rules_version.labels(self.version).set(1)

    def offer(self, value: bytes) -> None:
        """A published version (from the topic's follower); applied at the next `apply_pending`."""
        self._pending = value

    async def apply_pending(self) -> None:
        value, self._pending = self._pending, None
        if value is None:
            return
        metrics = self.collector.metrics
        try:
            document = decode_rules(value)
        except ConfigError as exc:
            metrics.rules_refused.inc()
            log.error("rules version refused, still running %s: %s", self.version, exc)
            return
        if document.name() == self.version:
            return
        if document.multiline is not None:
            await self._switch(document.multiline.rules)
        metrics.rules_version.clear()
        metrics.rules_version.labels(document.name()).set(1)
        log.info("rules version %s replaces %s", document.name(), self.version)
        self.version = document.name()

    async def _switch(self, rules: list[MultilineRule]) -> None:
        collector = self.collector
        collector.multiline_rules = rules
        for tailed in list(collector.files.values()):
            rule = rule_for(rules, tailed.source)
            if rule is None:
                if tailed.joiner is not None:
                    released = tailed.release_joiner()
                    if released:
                        await collector._publish(tailed, released)
            elif tailed.joiner is not None:
                tailed.joiner.rule = rule
            else:
                tailed.joiner = MultilineJoiner(rule)
