"""A running file collector takes multiline rules from a published rules version, between read passes."""

from __future__ import annotations

from pathlib import Path

from collectors.files.metrics import FileMetrics
from commands.broker import EmbeddedBroker
from core.rules import RulesDocument
from kafka_io.rules_topic import publish_rules
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
