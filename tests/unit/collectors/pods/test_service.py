"""The pod collector process stays light and fails early on bad configuration."""

from __future__ import annotations

import subprocess
import sys

import pytest

from collectors.pods.service import run_pod_collector
from core.errors import ConfigError
from core.settings import load_settings


def test_pod_collector_never_imports_faust() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import collectors.pods.service"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "faust" not in loaded and "mode" not in loaded
    assert "kubernetes_asyncio" not in loaded


async def test_a_bad_selector_stops_before_anything_starts() -> None:
    settings = load_settings(environ={"SELECTOR": "app in snowplow"}, pods={"metrics_port": 0})
    with pytest.raises(ConfigError, match="label selector"):
        await run_pod_collector(settings)
