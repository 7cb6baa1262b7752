"""Live rules through a real broker: `rules watch` publishes each valid change of the file to the compacted
config topic, every follower switches to it, bad versions are refused (by the watcher, and by workers
if one is published anyway), and a follower that starts later begins with the latest version."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agents.live_rules import LiveRules
from commands.broker import EmbeddedBroker
from commands.rules import watch
from core.settings import Settings, load_settings
from kafka_io.rules_topic import ensure_rules_topic, follow_rules, publish_rules
from tests.support.polling import wait_for

RULES = "version: {version}\nrouting:\n  rules:\n    - {{name: {name}, sinks: [file], level_at_least: error}}\n"


async def test_watch_publish_follow_refuse(broker: EmbeddedBroker, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    settings: Settings = load_settings(environ={}, kafka={"brokers": broker.bootstrap})
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(version="v1", name="first"))
    await ensure_rules_topic(settings)  # what `logweave prepare` does: followers create no topic
    stop = asyncio.Event()
    workers = [LiveRules(settings), LiveRules(settings)]
    tasks = [asyncio.create_task(watch(settings, path, stop, interval=0.05, switch_after=0))]
    tasks += [asyncio.create_task(follow_rules(settings, w.apply, stop, poll=0.1)) for w in workers]
    try:
        await wait_for(lambda: all(w.version == "v1" for w in workers), what="both workers on v1",
                       last_seen=lambda: [w.version for w in workers])
        with caplog.at_level(logging.ERROR, logger="commands.rules"):
            path.write_text(RULES.format(version="v2", name="second").replace("[file]", "[nowhere]"))
            await wait_for(lambda: "refused" in caplog.text, what="the watcher refusing the bad file")
        assert "unknown sink" in caplog.text
        await publish_rules(settings, b'{"v":1,"version":"sneaked","rules":{"routing":{"rules":[1]}}}')
        await wait_for(lambda: all(w.refused for w in workers), what="workers refusing a bad published version")
        assert [w.version for w in workers] == ["v1", "v1"]
        path.write_text(RULES.format(version="v3", name="third"))
        await wait_for(lambda: all(w.version == "v3" for w in workers), what="both workers on v3",
                       last_seen=lambda: [w.version for w in workers])
        assert all(w.router.line_rules[0].name == "third" for w in workers)
        late = LiveRules(settings)
        tasks.append(asyncio.create_task(follow_rules(settings, late.apply, stop, poll=0.1)))
        await wait_for(lambda: late.version == "v3", what="a late follower starting on the latest version",
                       last_seen=lambda: late.version)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
