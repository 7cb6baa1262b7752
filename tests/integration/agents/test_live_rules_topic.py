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
from core.rules import RulesDocument
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


async def test_caught_up_comes_after_the_versions_held_at_start(broker: EmbeddedBroker) -> None:
    """`caught_up` is called once what the topic held when reading began is applied, and at once for an
    empty topic: a worker's stages wait for it (agents/live_rules.py, wait_loaded)."""
    settings: Settings = load_settings(environ={}, kafka={"brokers": broker.bootstrap})
    await ensure_rules_topic(settings)
    stop = asyncio.Event()
    empty = LiveRules(settings)
    tasks = [asyncio.create_task(follow_rules(settings, empty.apply, stop, poll=0.1, caught_up=empty.mark_loaded))]
    try:
        await asyncio.wait_for(empty.wait_loaded("test"), 30)
        assert empty.version == "startup"
        for version in ("v1", "v2", "v3"):
            await publish_rules(settings, RulesDocument(version=version).encode(0))
        seen: list[str] = []  # the version each follower held when it was told it had caught up
        follower = LiveRules(settings)
        tasks.append(asyncio.create_task(follow_rules(settings, follower.apply, stop, poll=0.1,
                                                      caught_up=lambda: seen.append(follower.version))))
        await wait_for(lambda: seen, what="the second follower caught up")
        assert seen == ["v3"]
        await publish_rules(settings, RulesDocument(version="v4").encode(0))
        await wait_for(lambda: follower.version == "v4", what="the follower on v4")
        assert seen == ["v3"], "caught_up is called once"
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
