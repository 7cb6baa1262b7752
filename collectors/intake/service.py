"""The intake process: one publisher, the enabled listeners, and an orderly stop.

Stopping closes the listeners first (no new requests), then waits (bounded) for chunks already on
their way to Kafka, then flushes the producer: a request answered 202 is never lost to a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from collectors.intake.auth import TenantDirectory
from collectors.intake.context import IntakeContext
from collectors.intake.delivery import Delivery
from collectors.intake.forward import ForwardServer
from collectors.intake.http_api import build_http_app
from collectors.intake.metrics import IntakeMetrics
from collectors.intake.otlp_grpc import start_grpc
from collectors.intake.otlp_http import build_otlp_http_app
from collectors.intake.syslog_server import SyslogServer
from core.gc_tuning import tune_garbage_collector
from core.heartbeat_figures import INTAKE
from core.settings import Settings
from core.topics import RAW
from kafka_io.heartbeat import component_id, start_heartbeat
from kafka_io.publisher import ChunkPublisher

log = logging.getLogger(__name__)
Stopper = Callable[[], Awaitable[None]]


async def _serve_http(app: web.Application, host: str, port: int, what: str) -> Stopper:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("intake %s listening on %s:%d", what, host, port)
    return runner.cleanup


async def run_intake(settings: Settings, stop: asyncio.Event | None = None,
                     metrics: IntakeMetrics | None = None) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT when no event is given), then drain and flush."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    cfg = settings.intake
    metrics = metrics or IntakeMetrics()
    publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), cfg.buffer_bytes)
    delivery = Delivery(publisher, metrics, cfg.ack_timeout, cfg.buffer_bytes)
    ctx = IntakeContext(cfg, delivery, metrics, TenantDirectory(cfg))
    start_heartbeat(settings, INTAKE, metrics.registry, component_id("intake", cfg.http_port), stop)
    stoppers: list[Stopper] = []
    try:
        if cfg.http_port:
            stoppers.append(await _serve_http(build_http_app(ctx), cfg.host, cfg.http_port, "HTTP"))
        if cfg.forward_port:
            forward = ForwardServer(ctx)
            await forward.start(cfg.host, cfg.forward_port)
            stoppers.append(lambda: forward.stop(cfg.ack_timeout))
        if cfg.otlp_http_port:
            stoppers.append(await _serve_http(build_otlp_http_app(ctx), cfg.host, cfg.otlp_http_port, "OTLP/HTTP"))
        if cfg.otlp_grpc_port:
            grpc_server = await start_grpc(ctx, cfg.host, cfg.otlp_grpc_port)
            stoppers.append(lambda: grpc_server.stop(cfg.ack_timeout))
        if cfg.syslog_port or cfg.syslog_tls_port:
            syslog = SyslogServer(ctx)
            await syslog.start(cfg.host)
            stoppers.append(lambda: syslog.stop(cfg.ack_timeout))
        await publisher.start()
        delivery.started = True
        tune_garbage_collector()  # each request allocates a list per line: collect in larger batches
        watcher = asyncio.create_task(delivery.watch_broker(cfg.broker_probe_interval))
        try:
            await stop.wait()
        finally:
            watcher.cancel()
    finally:
        for stopper in reversed(stoppers):  # connections still store what they read meanwhile
            with contextlib.suppress(Exception):
                await stopper()
        delivery.started = False
        await delivery.drain(cfg.ack_timeout)
        with contextlib.suppress(Exception):
            await publisher.stop()
        log.info("intake stopped")
