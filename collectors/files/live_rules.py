"""The file collector's side of live multiline rules (collectors/live_rules.py decodes and reports them).

A version is applied between read passes, so between chunks: files a rule now covers start joining (an
open record continues under the new rule), files no rule covers any more send their open records and
stop. The version it runs is reported in `logweave_file_collector_rules_version_info`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collectors.live_rules import LiveMultilineRules
from collectors.multiline import MultilineJoiner, rule_for
from core.rule_settings import MultilineRule

if TYPE_CHECKING:
    from collectors.files.collector import FileCollector


def collector_rules(collector: FileCollector) -> LiveMultilineRules:
    """The live rules of a file collector: the published versions switch its files."""

    async def switch(rules: list[MultilineRule]) -> None:
        collector.multiline_rules = rules
        for tailed in list(collector.files.values()):
            rule = rule_for(rules, tailed.rule_source)
            if rule is None:
                if tailed.joiner is not None:
                    released = tailed.release_joiner()
                    if released:
                        await collector._publish(tailed, released)
            elif tailed.joiner is not None:
                tailed.joiner.rule = rule
            else:
                tailed.joiner = MultilineJoiner(rule)

    metrics = collector.metrics
    return LiveMultilineRules(switch, metrics.rules_version, metrics.rules_refused)
