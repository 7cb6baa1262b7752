"""A running pod collector takes multiline rules from published rules versions, at a chunk boundary.

Against the Kubernetes API test server and a real broker: a Java stack trace logged before any rule is
collected as lines of its own; after a version with the `java` detector is published (and reported in
the metrics and the heartbeat), the same trace on the same open stream comes out joined. A bad version
is refused, counted, and the running one stays: the next trace is joined still.
"""

from __future__ import annotations

import time
from pathlib import Path

from commands.broker import EmbeddedBroker
from core.heartbeat_figures import POD_COLLECTOR, FigureReader
from core.rules import RulesDocument
from kafka_io.rules_topic import ensure_rules_topic, publish_rules
from tests.integration.collectors.pods.conftest import pod_settings, running_collector, wait_for_lines
from tests.support.kube_api import FakeKubeApi
from tests.support.polling import wait_for

TRACE = ["ERROR charge failed", "java.lang.IllegalStateException: declined",
         "\tat com.example.Payments.charge(Payments.java:42)", "\tat com.example.Shop.order(Shop.java:7)"]
VERSION = "pod_collector_rules_version_info"


async def test_rules_switch_on_a_stream_being_read(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                   tmp_path: Path) -> None:
    settings = pod_settings(broker, kube, tmp_path)
    await ensure_rules_topic(settings)  # as `logweave prepare` makes it
    pod = kube.add_pod("payments", labels={"app": "snowplow", "team": "shop"})
    kube.log(pod, "app", ["INFO started", *TRACE])
    async with running_collector(settings) as run:
        await wait_for_lines(broker, 5)  # no rule: every line on its own
        beats = FigureReader(POD_COLLECTOR, run.metrics.registry, "pod-collector", 1.0)
        assert beats.beat(time.time()).rules_version == "startup"
        await publish_rules(settings, RulesDocument(version="java-on", multiline={"rules": [
            {"detectors": ["java"], "labels": {"team": "shop"}, "flush_timeout": "300ms"}]}).encode())
        await wait_for(lambda: run.value(f"logweave_{VERSION}", version="java-on") == 1,
                       what="the collector reporting version java-on")
        assert beats.beat(time.time()).rules_version == "java-on"
        kube.log(pod, "app", TRACE)  # the same follow connection: the switch comes at a chunk boundary
        await wait_for_lines(broker, 6)
        await publish_rules(settings, b'{"v":1,"version":"bad","rules":{"multiline":{"rules":[{}]}}}')
        await wait_for(lambda: run.value("logweave_pod_collector_rules_refused_total") == 1,
                       what="the collector refusing the bad version")
        assert run.value(f"logweave_{VERSION}", version="java-on") == 1
        assert beats.beat(time.time()).rules_version == "java-on"
        kube.log(pod, "app", [*TRACE, "INFO done"])
        got = await wait_for_lines(broker, 8)
        assert run.value("logweave_pod_collector_stream_reconnects_total") == 0  # one connection throughout
    sid = f"pod:{pod.uid}:app:0"
    joined = "\n".join(TRACE)
    assert got.texts(sid) == ["INFO started", *TRACE, joined, joined, "INFO done"]
    positions = [p for p, _, _ in got.lines[sid]]
    assert positions == sorted(set(positions))


async def test_a_starting_collector_reads_the_published_rules_first(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                   tmp_path: Path) -> None:
    """A version published before the collector starts joins the first lines it reads: it reads the rules
    topic before any stream starts (collectors/live_rules.py, wait_loaded), where the streams used to
    start by its own settings (no rule: every line on its own) while the follower caught up."""
    settings = pod_settings(broker, kube, tmp_path)
    await ensure_rules_topic(settings)
    await publish_rules(settings, RulesDocument(version="java-on", multiline={"rules": [
        {"detectors": ["java"], "labels": {"team": "shop"}, "flush_timeout": "300ms"}]}).encode())
    pod = kube.add_pod("payments", labels={"app": "snowplow", "team": "shop"})
    kube.log(pod, "app", ["INFO started", *TRACE, "INFO done"])
    async with running_collector(settings) as run:
        got = await wait_for_lines(broker, 3)
        assert run.value(f"logweave_{VERSION}", version="java-on") == 1
    assert got.texts(f"pod:{pod.uid}:app:0") == ["INFO started", "\n".join(TRACE), "INFO done"]
