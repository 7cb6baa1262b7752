"""The pod collector process: settings in, chunks on `logs.raw` out, until told to stop.

Wires the publisher (Kafka, acks=all, in-flight budget), the position store (logs.positions), the
API client, one watcher per namespace scope, the stream supervisor, the live multiline rules (the
`config.rules` topic, collectors/live_rules.py) and the metrics endpoint; shuts
down in the order that loses nothing: stop watching, let every stream publish what it read, flush the
producer, then save the acknowledged positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal

from prometheus_client import start_http_server

from collectors.live_rules import LiveMultilineRules
from collectors.pods.client import KubeClient
from collectors.pods.metrics import PodMetrics
from collectors.pods.polled_log import TickPoller
from collectors.pods.position_store import PositionStore
from collectors.pods.selectors import LabelSelector, namespace_scopes
from collectors.pods.supervisor import StreamSupervisor
from collectors.pods.watcher import PodWatcher
from core.gc_tuning import tune_garbage_collector
from core.heartbeat_figures import POD_COLLECTOR
from core.native import native_path
from core.settings import Settings
from core.topics import POSITIONS, RAW
from kafka_io.fetcher_close import close_fetchers_reliably
from kafka_io.heartbeat import component_id, start_heartbeat
from kafka_io.kafka_compat import install_idle_fetch_pause
from kafka_io.partition_batcher import PartitionBatcher
from kafka_io.publisher import ChunkPublisher
from kafka_io.rules_topic import follow_rules_forever

log = logging.getLogger(__name__)
# how long the partition batcher gathers the chunks of one tick when some streams read theirs in their own
# tasks (a multiline rule, a rules switch, a full budget, a busy stream read as its data comes): on a loaded
# event loop those take some milliseconds to run. A tick whose poll published every stream's lines itself
# is sent as it ends.
TICK_GATHER_SECONDS = 0.05


async def run_pod_collector(settings: Settings, stop: asyncio.Event | None = None,
                            metrics: PodMetrics | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when no event is given), then flush."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    cfg = settings.pods
    close_fetchers_reliably()
    install_idle_fetch_pause()  # the position store's consumer: no tight fetch loop on a broker answering at once
    LabelSelector.parse(cfg.selector)  # a bad selector is a config error before anything starts
    metrics = metrics or PodMetrics()
    server = None
    if cfg.metrics_port:
        server, _ = start_http_server(cfg.metrics_port, addr=cfg.metrics_host, registry=metrics.registry)
    start_heartbeat(settings, POD_COLLECTOR, metrics.registry, component_id("pod-collector", cfg.metrics_port), stop)
    client = await KubeClient.create(cfg)
    publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), cfg.buffer_bytes)
    # every stream's chunks, gathered per logs.raw partition into multi-stream records (docs/chunk-format.md):
    # the streams flush together at each tick of flush_interval (batching.py), so a short linger gathers a tick
    batcher = PartitionBatcher(publisher, min(cfg.flush_interval, TICK_GATHER_SECONDS), cfg.chunk_lines,
                               cfg.chunk_bytes)
    positions = PositionStore(settings.kafka, settings.topic(POSITIONS), cfg.position_interval)
    supervisor: StreamSupervisor | None = None
    watch_tasks: list[asyncio.Task[None]] = []
    forget_ticks = TickPoller.of(cfg.flush_interval).on_tick_end(functools.partial(_tick_ended, batcher))
    try:
        await publisher.start()
        await positions.start()
        tune_garbage_collector()  # each line read is a list until its chunk is sent: collect in larger batches
        supervisor = StreamSupervisor(client, batcher, cfg, metrics, positions, settings.multiline)
        # multiline rules published to config.rules, read before any stream starts; later, each stream
        # switches at its next chunk boundary
        rules = LiveMultilineRules(supervisor.switch_rules, metrics.rules_version, metrics.rules_refused)
        watch_tasks = [asyncio.create_task(follow_rules_forever(settings, rules.offer, stop,
                                                                caught_up=rules.mark_loaded), name="rules")]
        await rules.wait_loaded(settings.kafka.connect_timeout, stop)
        watch_tasks.append(asyncio.create_task(rules.apply_as_offered(stop), name="rules switch"))
        watchers = [PodWatcher(client, ns, cfg, supervisor, metrics) for ns in namespace_scopes(cfg.namespace)]
        watch_tasks += [asyncio.create_task(w.run(), name=f"watch {w.scope}") for w in watchers]
        watch_tasks.append(asyncio.create_task(supervisor.watch_recoveries(), name="producer recoveries"))
        log.info("pod collector watching %s with selector %r (line scan: %s)", ", ".join(w.scope for w in watchers),
                 cfg.selector, native_path("pod_lines"))
        await stop.wait()
    finally:
        forget_ticks()
        for task in watch_tasks:
            task.cancel()
        await asyncio.gather(*watch_tasks, return_exceptions=True)
        if supervisor is not None:
            await supervisor.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_drain(batcher, publisher), 20)
        await positions.stop()  # after the publisher: the last acknowledgements are in
        await client.close()
        if server is not None:
            server.shutdown()
        log.info("pod collector stopped after publishing %d lines (%d stream chunks in %d records)",
                 int(metrics.value("logweave_pod_collector_lines_published_total")), batcher.chunks, batcher.records)


def _tick_ended(batcher: PartitionBatcher, for_readers: bool) -> None:
    """Send a tick's batches at once when its poll published every stream's lines itself (the usual case):
    nothing more of that tick is coming, and waiting TICK_GATHER_SECONDS would only add to the latency."""
    if not for_readers:
        batcher.flush()


async def _drain(batcher: PartitionBatcher, publisher: ChunkPublisher) -> None:
    await batcher.stop()  # what is gathered goes to the publisher, which then flushes it
    await publisher.stop()


def main() -> None:
    from core.settings import load_settings
    from core.startup import run_or_exit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_or_exit(lambda: asyncio.run(run_pod_collector(load_settings())))


if __name__ == "__main__":
    main()
