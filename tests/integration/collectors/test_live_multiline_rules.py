"""A running file collector takes multiline rules from a published rules version, between read passes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collectors.files.metrics import FileMetrics
from commands.broker import EmbeddedBroker
from core.rules import RulesDocument
from kafka_io.rules_topic import ensure_rules_topic, publish_rules
from tests.integration.collectors.file_helpers import (
    collector_settings,
    cri,
    pod_log,
    running_collector,
    wait_for_lines,
)
from tests.support.polling import wait_for

TRACE = [b"ERROR charge failed", b"java.lang.IllegalStateException: declined",
         b"\tat com.example.Payments.charge(Payments.java:42)"]


async def test_published_multiline_rules_apply_to_a_running_collector(broker: EmbeddedBroker,
                                                                      tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "payments")
    settings = collector_settings(broker, tmp_path)
    metrics = FileMetrics()
    path.write_bytes(b"".join(cri(line) for line in TRACE))
    async with running_collector(settings, metrics):
        await wait_for_lines(settings, 3)  # no rule yet: three lines
        await publish_rules(settings, RulesDocument(version="java-on", multiline={"rules": [
            {"detectors": ["java"], "namespaces": ["shop"], "flush_timeout": "200ms"}]}).encode())
        await wait_for(lambda: metrics.value("logweave_file_collector_rules_version_info", version="java-on") == 1,
                       what="the collector reporting version java-on")
        with open(path, "ab") as handle:
            handle.write(b"".join(cri(line) for line in TRACE))
        lines = await wait_for_lines(settings, 4)
        await publish_rules(settings, b'{"v":1,"version":"bad","rules":{"multiline":{"rules":[{}]}}}')
        await wait_for(lambda: metrics.value("logweave_file_collector_rules_refused_total") == 1,
                       what="the collector refusing the bad version")
    texts = [line.data for line in sorted(lines, key=lambda ln: ln.position)]
    assert texts == [*TRACE, b"\n".join(TRACE)]


async def test_a_starting_collector_joins_its_backlog_by_the_published_rules(broker: EmbeddedBroker,
                                                                             tmp_path: Path) -> None:
    """A version published before the collector starts applies to the first lines it reads: it reads the
    rules topic before any file (collectors/live_rules.py, wait_loaded), where its first pass used to
    read the backlog by its own settings (no rule: three lines) while the follower caught up."""
    path = pod_log(tmp_path / "pods", "shop", "payments")
    settings = collector_settings(broker, tmp_path)
    await ensure_rules_topic(settings)
    await publish_rules(settings, RulesDocument(version="java-on", multiline={"rules": [
        {"detectors": ["java"], "namespaces": ["shop"], "flush_timeout": "200ms"}]}).encode())
    path.write_bytes(b"".join(cri(line) for line in TRACE) + cri(b"INFO next request"))
    metrics = FileMetrics()
    async with running_collector(settings, metrics):
        lines = await wait_for_lines(settings, 2)
        assert metrics.value("logweave_file_collector_rules_version_info", version="java-on") == 1
    texts = [line.data for line in sorted(lines, key=lambda ln: ln.position)]
    assert texts == [b"\n".join(TRACE), b"INFO next request"]


async def test_a_collector_without_a_rules_topic_starts_at_once(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """No rules topic (not prepared yet) holds no version: the collector does not wait out its bound."""
    path = pod_log(tmp_path / "pods", "shop", "payments")
    settings = collector_settings(broker, tmp_path)
    path.write_bytes(cri(b"INFO hello"))
    started = asyncio.get_running_loop().time()
    async with running_collector(settings):
        await wait_for_lines(settings, 1)
    assert asyncio.get_running_loop().time() - started < settings.kafka.connect_timeout
