"""The pod collector process: settings in, chunks on `logs.raw` out, until told to stop.

Wires the publisher (Kafka, acks=all, in-flight budget), the API client, one watcher per namespace
scope, the stream supervisor and the metrics endpoint; shuts down in the order that loses nothing:
stop watching, let every stream publish what it read, then flush the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from prometheus_client import start_http_server

from collectors.pods.client import KubeClient
from collectors.pods.metrics import PodMetrics
from collectors.pods.selectors import LabelSelector, namespace_scopes
from collectors.pods.supervisor import StreamSupervisor
from collectors.pods.watcher import PodWatcher
from core.settings import Settings
from core.topics import RAW
from kafka_io.publisher import ChunkPublisher

log = logging.getLogger(__name__)


async def run_pod_collector(settings: Settings, stop: asyncio.Event | None = None,
                            metrics: PodMetrics | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when no event is given), then flush."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    cfg = settings.pods
    LabelSelector.parse(cfg.selector)  # a bad selector is a config error before anything starts
    metrics = metrics or PodMetrics()
    server = None
    if cfg.metrics_port:
        server, _ = start_http_server(cfg.metrics_port, registry=metrics.registry)
    client = await KubeClient.create(cfg)
    publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), cfg.buffer_bytes)
    supervisor: StreamSupervisor | None = None
    watch_tasks: list[asyncio.Task[None]] = []
    try:
        await publisher.start()
        supervisor = StreamSupervisor(client, publisher, cfg, metrics, settings.multiline)
        watchers = [PodWatcher(client, ns, cfg, supervisor, metrics) for ns in namespace_scopes(cfg.namespace)]
        watch_tasks = [asyncio.create_task(w.run(), name=f"watch {w.scope}") for w in watchers]
        log.info("pod collector watching %s with selector %r", ", ".join(w.scope for w in watchers), cfg.selector)
        await stop.wait()
    finally:
        for task in watch_tasks:
            task.cancel()
        await asyncio.gather(*watch_tasks, return_exceptions=True)
        if supervisor is not None:
            await supervisor.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.stop(), 20)
        await client.close()
        if server is not None:
            server.shutdown()
        log.info("pod collector stopped after publishing %d lines",
                 int(metrics.value("logweave_pod_collector_lines_published_total")))


def main() -> None:
    from core.errors import ConfigError
    from core.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_pod_collector(load_settings()))
    except ConfigError as exc:
        raise SystemExit(f"logweave pod collector: {exc}") from None


if __name__ == "__main__":
    main()
