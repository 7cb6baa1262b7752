"""Multiline records across a kubelet rotation (0.log renamed to 0.log.<time>, a new 0.log), with real files,
a real rename and a real collector and broker.

A stack trace still open when its file is rotated is sent whole (every line the old file holds, one
record) when the collector releases the old file, long before its flush timeout, and nothing of either
file is lost or joined across the two files (they are two streams with their own positions).
"""

from __future__ import annotations

import os
from pathlib import Path

from commands.broker import EmbeddedBroker
from core.rule_settings import MultilineRule, MultilineSettings
from tests.integration.collectors.file_helpers import (
    Line,
    collector_settings,
    cri,
    pod_log,
    running_collector,
    wait_for_lines,
)

TRACE = [b"ERROR payment failed for order 7", b"java.lang.IllegalStateException: card declined",
         b"\tat com.example.shop.Payments.charge(Payments.java:42)",
         b"\tat com.example.shop.CheckoutController.checkout(CheckoutController.java:77)"]


def append(path: Path, *contents: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(cri(content) for content in contents))


async def test_a_record_open_at_rotation_is_sent_whole_when_the_old_file_is_released(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = collector_settings(broker, tmp_path, rotated_grace=0.5)
    # a flush timeout far beyond the test's waits: only the release can send the open record in time
    settings = settings.model_copy(update={"multiline": MultilineSettings(
        rules=[MultilineRule(detectors=["java"], flush_timeout=600)])})
    path = pod_log(tmp_path / "pods", "shop", "checkout")
    append(path, b'{"msg":"before"}', *TRACE)
    async with running_collector(settings):
        await wait_for_lines(settings, 1, timeout=60)  # "before": closed by the trace's first line
        os.rename(path, path.with_name("0.log.20261202-231500"))  # what the kubelet does
        # the new file's last line stays open (it may still be continued): "after" is closed by "last"
        append(path, b"\tat com.example.shop.Server.handle(Server.java:9)", b'{"msg":"after"}', b'{"msg":"last"}')
        lines = await wait_for_lines(settings, 4, timeout=60)  # before, the trace, and the new file's two
    texts = sorted((ln.stream_id, ln.position, ln.data) for ln in lines)
    records = [data for _, _, data in texts]
    assert len(lines) == 4, records
    assert b"\n".join(TRACE) in records, f"the old file's open record was not sent whole: {records}"
    by_stream: dict[str, list[Line]] = {}
    for ln in lines:
        by_stream.setdefault(ln.stream_id, []).append(ln)
    assert len(by_stream) == 2, "one stream per file"
    new = sorted(next(group for group in by_stream.values() if any(b"after" in ln.data for ln in group)),
                 key=lambda ln: ln.position)
    assert [ln.data for ln in new] == [b"\tat com.example.shop.Server.handle(Server.java:9)", b'{"msg":"after"}']
