"""The collectors' live multiline rules: a published version is validated, handed to the collector's
switch, and reported; a bad one is refused and counted, and the running version stays."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from collectors.live_rules import LiveMultilineRules
from core.rule_settings import MultilineRule
from core.rules import RulesDocument


def live() -> tuple[LiveMultilineRules, list[list[MultilineRule]], CollectorRegistry]:
    registry = CollectorRegistry()
    switched: list[list[MultilineRule]] = []

    async def switch(rules: list[MultilineRule]) -> None:
        switched.append(rules)

    rules = LiveMultilineRules(switch, Gauge("v_info", "v", ["version"], registry=registry),
                               Counter("refused", "r", registry=registry))
    return rules, switched, registry


def running(registry: CollectorRegistry) -> list[str]:
    return [s.labels["version"] for m in registry.collect() if m.name == "v_info" for s in m.samples if s.value == 1]


async def test_a_version_switches_the_rules_and_is_reported() -> None:
    rules, switched, registry = live()
    assert running(registry) == ["startup"]
    rules.offer(RulesDocument(version="v2", multiline={"rules": [{"detectors": ["java"]}]}).encode())
    assert rules.arrived.is_set()
    await rules.apply_pending()
    assert [[r.detectors for r in s] for s in switched] == [[["java"]]]
    assert rules.version == "v2" and running(registry) == ["v2"]
    rules.offer(RulesDocument(version="v3").encode())  # no multiline section: the rules stay
    await rules.apply_pending()
    assert len(switched) == 1 and running(registry) == ["v3"]


async def test_a_bad_version_is_refused_and_the_running_one_kept() -> None:
    rules, switched, registry = live()
    rules.offer(RulesDocument(version="v2", multiline={"rules": [{"detectors": ["java"]}]}).encode())
    await rules.apply_pending()
    rules.offer(b'{"v":1,"version":"bad","rules":{"multiline":{"rules":[{}]}}}')
    await rules.apply_pending()
    assert registry.get_sample_value("refused_total") == 1
    assert len(switched) == 1 and rules.version == "v2" and running(registry) == ["v2"]
