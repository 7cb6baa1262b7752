"""The file collector's metrics endpoint binds loopback unless collector.metrics_host says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.broker import EmbeddedBroker, free_port
from tests.integration.collectors.file_helpers import collector_settings, running_collector
from tests.support.polling import wait_for
from tests.support.processes import listening_address


@pytest.mark.parametrize(("metrics_host", "expected"), [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")])
async def test_metrics_endpoint_binds_where_told(broker: EmbeddedBroker, tmp_path: Path, metrics_host: str | None,
                                                 expected: str) -> None:
    port = free_port()
    extra = {"metrics_host": metrics_host} if metrics_host else {}
    settings = collector_settings(broker, tmp_path, metrics_port=port, **extra)
    async with running_collector(settings):
        address = await wait_for(lambda: listening_address(port), timeout=30,
                                 what=f"the collector's metrics endpoint listening on port {port}")
    assert address == expected
