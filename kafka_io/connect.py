"""Connecting to Kafka at start: retry an unreachable broker for a bounded time, then say so in one line.

Without a bound a process either printed a 25-90 line traceback at the first refused connection or
waited silently. Every process's first contact with Kafka goes through `connect`: it retries with
growing pauses (logging each one) until `kafka.connect_timeout`, then raises BrokerUnreachable naming
the addresses tried, which the process's entry point prints as its one line (core/startup.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aiokafka.errors import KafkaConnectionError

from core.errors import BrokerUnreachable
from core.settings import KafkaSettings
from kafka_io.connect_check import start_checked

log = logging.getLogger(__name__)
T = TypeVar("T")
UNREACHABLE = (KafkaConnectionError, OSError, TimeoutError)


class _Startable(Protocol):
    async def start(self) -> None: ...


C = TypeVar("C", bound=_Startable)


async def started(client: C, kafka: KafkaSettings | None = None) -> C:
    """`client` started; a client whose start failed is closed (it may hold half-open connections).
    Given `kafka`, a TLS or SASL set-up problem becomes a ConfigError with one line (never retried)."""
    try:
        if kafka is not None:
            await start_checked(client, kafka)
        else:
            await client.start()
    except BaseException:
        closing = getattr(client, "stop", None) or getattr(client, "close", None)
        if closing is not None:
            with contextlib.suppress(Exception):
                await closing()
        raise
    return client


async def connect(kafka: KafkaSettings, attempt: Callable[[], Awaitable[T]], what: str,
                  timeout: float | None = None) -> T:
    """The result of `attempt()`, retried while no broker answers, for at most `timeout` seconds
    (default `kafka.connect_timeout`); then BrokerUnreachable."""
    limit = kafka.connect_timeout if timeout is None else timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    pause = 0.25
    while True:
        try:
            return await attempt()
        except UNREACHABLE as exc:
            left = deadline - loop.time()
            if left <= 0:
                raise BrokerUnreachable(
                    f"Kafka at {kafka.brokers} did not answer within {limit:g}s ({what}: {_reason(exc)}); check "
                    "that the broker runs and kafka.brokers (LOGWEAVE_KAFKA__BROKERS or KAFKA_BROKERS) names it; "
                    "kafka.connect_timeout sets how long to wait") from None
            log.warning("Kafka at %s does not answer yet (%s); trying again for up to %.0fs more",
                        kafka.brokers, _reason(exc), left)
            await asyncio.sleep(min(pause, max(left, 0.01)))
            pause = min(pause * 2, 5.0)


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def wait_for_brokers(kafka: KafkaSettings) -> None:
    """Block until one bootstrap server accepts a TCP connection, for at most `kafka.connect_timeout`.

    For the faust worker, which would otherwise retry forever with a traceback per attempt: it is
    called before its event loop runs, so blocking here holds up nothing else."""
    import socket
    import time

    deadline = time.monotonic() + kafka.connect_timeout
    pause, last = 0.25, ""
    while True:
        for server in kafka.bootstrap_servers:
            host, _, port = server.rpartition(":")
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
                return
            except OSError as exc:
                last = f"{server}: {exc.strerror or exc}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerUnreachable(
                f"Kafka at {kafka.brokers} did not answer within {kafka.connect_timeout:g}s (starting the worker: "
                f"{last}); check that the broker runs and kafka.brokers (LOGWEAVE_KAFKA__BROKERS or KAFKA_BROKERS) "
                "names it; kafka.connect_timeout sets how long to wait")
        log.warning("Kafka at %s does not answer yet (%s); trying again for up to %.0fs more",
                    kafka.brokers, last, left)
        time.sleep(min(pause, left))
        pause = min(pause * 2, 5.0)
