"""The stats page in a real headless Chromium during a pipeline run: figures match /metrics.

Saves a screenshot as a test artifact (test-artifacts/stats-page.png).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.integration.worker.test_grouping import BASE, doc
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs it with apt-get (package chromium)")
    return path


def render(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               "--virtual-time-budget=6000", *extra, url],
                              capture_output=True, text=True, timeout=120)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_stats_page_shows_the_metrics(make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker({"LOGWEAVE_TRACES__GAP": "60s", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}).start()
    await worker.feed([doc(f"trace-{i % 40}", BASE + i, i) for i in range(400)] + [b"not json"] * 3)

    def settled() -> str | None:
        text = worker.get("/metrics")[1].decode()
        done = (metric(text, "logweave_sink_lines_written_total", sink="file") >= 400
                and metric(text, "logweave_open_traces") == 40
                and metric(text, "logweave_dead_letters_total", reason="not_json") == 3)
        return text if done else None

    metrics = await wait_for(settled, timeout=90, what="400 lines written, 40 open traces, 3 dead letters")
    url = f"http://127.0.0.1:{worker.web_port}/"
    dom = render(url, "--dump-dom").stdout
    shown = dict(re.findall(r'data-metric="([^"]+)">([^<]*)<', dom))
    assert shown["lines.parse_in"] == str(int(metric(metrics, "logweave_lines_total", stage="parse_in"))) == "403"
    assert shown["lines.routed"] == "400"
    assert shown["sink_lines.file"] == str(int(metric(metrics, "logweave_sink_lines_written_total", sink="file")))
    assert shown["dead_letters.parse/not_json"] == "3"
    assert shown["open_traces"] == str(int(metric(metrics, "logweave_open_traces"))) == "40"
    assert shown["breaker.file"] == "closed"
    status = orjson.loads(worker.get("/readyz")[1])["native"]
    assert set(status) == {"line_scan", "trace_fold"}
    assert all(f"{name}: {how}" in dom for name, how in status.items())
    assert "cdn" not in dom.lower() and "https://" not in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "stats-page.png"
    render(url, f"--screenshot={shot}", "--window-size=1200,900")
    assert shot.exists() and shot.stat().st_size > 10_000
