"""The stats page's pipeline view in a real headless Chromium: a real worker and a real file
collector publish heartbeats to a real broker, and the worker's page shows both (with the worker's
drain) in pipeline order, with a time axis, lag in records and seconds, and a dead letter's latest
example. Screenshots at 1400 px and 800 px wide are saved in test-artifacts/; at 800 px the page
must not be wider than the window.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from collectors.files.service import run_file_collector
from commands.broker import EmbeddedBroker, free_port
from core.settings import load_settings
from tests.e2e.test_stats_page import ARTIFACTS, render
from tests.integration.collectors.file_helpers import cri, pod_log
from tests.integration.worker.test_grouping import BASE, doc
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness


def pipeline_ready(worker: WorkerHarness) -> dict[str, Any] | None:
    status, body = worker.get("/api/pipeline")
    if status != 200:
        return None
    page = orjson.loads(body)
    summary = page["summary"]
    kinds = [c["kind"] for c in summary["components"] if c["state"] == "running"]
    example = summary["dead_letters"].get("not_json", {}).get("example")
    return page if kinds == ["file-collector", "worker", "drain"] and example and len(page["history"]) >= 3 else None


async def test_the_page_shows_every_component_in_pipeline_order(
        broker: EmbeddedBroker, make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    worker = await make_worker({"LOGWEAVE_HEARTBEATS__INTERVAL": "1s", "LOGWEAVE_TRACES__GAP": "60s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}).start()
    settings = load_settings(environ={}, kafka={"brokers": broker.bootstrap,
                                                "partitions": worker.settings.kafka.partitions},
                             heartbeats={"interval": "1s"}, collector={
                                 "paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                 "checkpoint_dir": str(tmp_path / "ckpt"), "metrics_port": free_port(),
                                 "rescan_interval": 0.2, "flush_interval": 0.05})
    lines = [orjson.dumps(doc(f"trace-{i % 20}", BASE + i, i)) for i in range(300)]
    lines[150:150] = [b"this line is not JSON"]
    pod_log(tmp_path / "pods", "shop", "web-1").write_bytes(b"".join(cri(line) for line in lines))
    stop = asyncio.Event()
    collector = asyncio.create_task(run_file_collector(settings, stop))
    try:
        page = await wait_for(lambda: asyncio.to_thread(pipeline_ready, worker), timeout=120,
                              what="the worker's /api/pipeline with collector, worker and drain running, a "
                              "not_json example and 3 history points",
                              last_seen=lambda: worker.get("/api/pipeline")[1][:600])
        assert [s["kind"] for s in page["summary"]["stages"]] == ["file-collector", "worker", "drain"]
        url = f"http://127.0.0.1:{worker.web_port}/"
        dom = (await asyncio.to_thread(render, url, "--dump-dom", "--window-size=1400,1600")).stdout
        assert re.findall(r'data-stage-row="([^"$]+)"', dom) == ["file-collector", "worker", "drain"]
        components = re.findall(r'data-component="([^"$]+)"', dom)
        assert len(components) == 3 and components[2].endswith("/file")
        assert re.findall(r'data-state="[^"$]+">([a-z]+)<', dom) == ["running"] * 3
        assert re.search(r'data-example="not_json">this line is not JSON<', dom)
        ticks = re.findall(r'data-tick="x">(\d\d:\d\d:\d\d)<', dom)
        assert len(ticks) == 5 and ticks == sorted(ticks), ticks  # a time axis, in order
        assert re.search(r'data-lag-seconds="file">(\d+ s|-)<', dom)
        narrow = (await asyncio.to_thread(render, url, "--dump-dom", "--window-size=800,1600")).stdout
        content, window = map(int, re.search(r'data-layout="(\d+)/(\d+)"', narrow).groups())  # type: ignore[union-attr]
        assert content <= window, f"the page is {content} px wide in an {window} px window"
        ARTIFACTS.mkdir(exist_ok=True)
        for width in (1400, 800):
            shot = ARTIFACTS / f"pipeline-page-{width}.png"
            await asyncio.to_thread(render, url, f"--screenshot={shot}", f"--window-size={width},1700")
            assert shot.exists() and shot.stat().st_size > 20_000 and shot.stat().st_mtime > time.time() - 300
    finally:
        stop.set()
        await asyncio.wait_for(collector, 60)
