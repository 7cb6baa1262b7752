"""The stats page in a real headless Chromium during a pipeline run: figures match /metrics, and the
intake's refused records are listed with a masked example.

Saves a screenshot as a test artifact (test-artifacts/stats-page.png).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from commands.broker import free_port
from tests.integration.worker.test_grouping import BASE, doc
from tests.support.polling import wait_for
from tests.support.processes import INTAKE_HTTP_ONLY, intake, wait_http_ok_in_thread
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


async def test_the_page_shows_the_intakes_refused_records_with_a_masked_example(
        make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    worker = await make_worker({"LOGWEAVE_HEARTBEATS__INTERVAL": "1s"}).start()
    port = free_port()
    env = {**worker.env, "LOGWEAVE_INTAKE__HTTP_PORT": str(port), **INTAKE_HTTP_ONLY}
    process = intake(tmp_path, env).start()
    try:
        await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 30, process)
        body = b'{"msg": "fine"}\n{"msg": "login", "password": "hunter2", oops}\n'
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/logs", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)  # loopback only
        assert answer.value.code == 400

        def refusal_in_view() -> dict[str, Any] | None:
            dead = orjson.loads(worker.get("/api/pipeline")[1])["summary"]["dead_letters"]
            return dead.get("intake: not_json")

        entry = await wait_for(refusal_in_view, timeout=60, what="the intake's refusal in the worker's pipeline view")
        url = f"http://127.0.0.1:{worker.web_port}/"
        dom = render(url, "--dump-dom").stdout
    finally:
        process.stop()
    assert entry["example"] == '{"msg": "login", "password": "********", oops}'
    examples = {html.unescape(reason): html.unescape(text)
                for reason, text in re.findall(r'data-example="([^"]+)">([^<]*)<', dom)}
    assert examples["intake: not_json"] == '{"msg": "login", "password": "********", oops}', examples
    assert "hunter2" not in dom
