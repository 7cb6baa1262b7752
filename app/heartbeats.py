"""The worker's heartbeats: one for the worker's stream stages, one per drain (sink) it runs.

The figures come from the worker's own metrics (core/heartbeat_figures.py); a drain's beat adds
its sink's state, last error and oldest unwritten age from the runner's health. Beats start once
the App is started and stop (with a last `stopped` beat) when faust stops the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import faust
from prometheus_client import REGISTRY

from agents.drain_runner import DrainRunner
from app.worker_start import member_id
from core import topics
from core.heartbeat import DeadLetterFigure, Heartbeat, SinkFigure
from core.heartbeat_figures import (
    FigureReader,
    Sample,
    drain_recipe,
    host_name,
    latest_example,
    registry_values,
    where,
    worker_recipe,
)
from core.settings import Settings
from kafka_io.heartbeat import HeartbeatPublisher

DRAIN_REJECTED = "rejected by the sink"


def worker_id(settings: Settings) -> str:
    return member_id(settings, settings.worker.web_port) or f"{settings.worker.app_id}-{host_name()}-" \
        f"{settings.worker.web_port}"


def drain_beat(reader: FigureReader, runner: DrainRunner) -> Callable[[float, str], Heartbeat]:
    """The drain's beat: the registry's figures plus the runner's sink health."""

    def beat(now: float, state: str) -> Heartbeat:
        heartbeat = reader.beat(now, state)
        health = runner.health
        heartbeat.sink = SinkFigure(runner.name, health.state.name.lower(), health.last_error or None,
                                    health.oldest_unwritten_seconds(now) if health.oldest_pending else 0.0)
        rejected = int(Sample("logweave_sink_dead_letters_total", where(sink=runner.name))
                       .read(registry_values(REGISTRY)))
        if rejected:
            heartbeat.dead_letters = {DRAIN_REJECTED: DeadLetterFigure(rejected, latest_example(f"sink:{runner.name}"))}
        return heartbeat

    return beat


def register(app: faust.App, settings: Settings, runners: dict[str, DrainRunner]) -> None:
    """Publish the worker's and each drain's heartbeats for the life of the worker."""
    if not settings.heartbeats.enabled:
        return
    interval, me = settings.heartbeats.interval, worker_id(settings)
    beats: list[Callable[[float, str], Heartbeat]] = []
    if set(settings.worker.stages) & {"parse", "group"}:
        beats.append(FigureReader(worker_recipe(), REGISTRY, me, interval).beat)
    for name, runner in runners.items():
        recipe = drain_recipe(name, settings.topic(topics.sink_topic(name)))
        beats.append(drain_beat(FigureReader(recipe, REGISTRY, f"{me}/{name}", interval), runner))

    @app.task
    async def publish_heartbeats() -> None:
        await asyncio.gather(*(HeartbeatPublisher(settings, beat).run() for beat in beats))
