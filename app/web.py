"""Web views on the faust web server: stats page, trace lookup, health, readiness, metrics.

Who may call which view is decided by app/web_guard.py (bearer tokens, trace id checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.drain_runner import DrainRunner
from agents.sink_health import SinkState
from app import heartbeat_metrics
from app.faust_app import recovery_completed
from app.pipeline_watch import PipelineWatch
from app.stats import RateHistory, snapshot
from app.trace_tables import trace_table
from app.web_guard import WebGuard, quiet_bad_requests, trace_id_problem
from core import topics
from core.metrics import CONSUMER_LAG
from core.native import native_status
from core.settings import Settings
from tables.trace_state import decode_state

STATS_PAGE = (Path(__file__).parent / "static" / "stats.html").read_bytes()


def _json(view: View, data: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(data), content_type="application/json", status=status)


async def refresh_lag(app: faust.App) -> dict[str, int]:
    """Set the lag gauges; return the lag per topic over this worker's partitions.

    Lag runs from the group's committed offset, not from where faust has read ahead into its
    buffers; a partition with no committed offset counts from the start of the topic (a sink that
    never wrote anything has all of it waiting)."""
    consumer = app.consumer
    # changelog partitions are read by recovery and standbys at offsets the table keeps, not the group's
    assigned = [tp for tp in consumer.assignment() if not tp.topic.endswith("-changelog")]
    committed = consumer._committed_offset  # type: ignore[attr-defined]
    uncommitted = [tp for tp in assigned if committed.get(tp) is None]
    earliest = await consumer.earliest_offsets(*uncommitted) if uncommitted else {}
    per_topic: dict[str, int] = {}
    for tp in assigned:
        try:
            highwater = consumer.highwater(tp)
        except AssertionError:  # revoked since `assigned` was read (aiokafka asserts it is assigned): a
            continue  # rebalance during the await above, or on the consumer's own thread; it used to crash the worker
        if highwater is None:
            continue
        start = committed.get(tp)
        lag = max(0, highwater - (start if start is not None else earliest.get(tp) or 0))
        CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + lag
    return per_topic


def unready_sinks(settings: Settings, runners: dict[str, DrainRunner], lag: dict[str, int]) -> list[str]:
    """Sinks not delivering (starting, failing, breaker open) with more than `sinks.readiness_backlog`
    records waiting in their topic, each as one line."""
    out = []
    for name, runner in runners.items():
        waiting = lag.get(settings.topic(topics.sink_topic(name)), 0)
        health = runner.health
        if health.state is not SinkState.READY and waiting > settings.sinks.readiness_backlog:
            out.append(f"sink {name} is {health.state.name.lower()} with {waiting} records waiting"
                       + (f": {health.last_error}" if health.last_error else ""))
    return out


def register(app: faust.App, settings: Settings, runners: dict[str, DrainRunner] | None = None) -> None:
    """Attach the views and the stats sampler to the App."""
    history = RateHistory()
    guard = WebGuard(settings.worker, settings.auth.token_hashes)
    quiet_bad_requests()
    sinks = runners or {}
    lag: dict[str, int] = {}

    @app.timer(2.0, name="stats_sampler")
    async def sample_stats() -> None:
        if app.consumer is not None and recovery_completed():
            lag.clear()
            lag.update(await refresh_lag(app))
        for runner in sinks.values():
            runner.health.publish_age()
        history.sample()

    @app.page("/")
    class StatsPage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(STATS_PAGE, content_type="text/html")

    @app.page("/api/stats")
    class StatsApi(View):
        async def get(self, request: Request) -> Response:
            if (refused := guard.refuse(self, request)) is not None:
                return refused
            return _json(self, {"totals": snapshot(), "history": history.as_list(),
                                "sinks": settings.sinks.enabled, "worker": settings.worker.app_id,
                                "native": native_status(),
                                "sink_health": {name: {**runner.health.as_dict(),
                                                       "backlog": lag.get(settings.topic(topics.sink_topic(name)))}
                                                for name, runner in sinks.items()}})

    watch = PipelineWatch(settings)
    if settings.heartbeats.enabled:
        heartbeat_metrics.install(lambda: watch.follower.view)

        @app.task
        async def follow_pipeline() -> None:
            await watch.run()

    @app.page("/api/pipeline")
    class PipelineApi(View):
        async def get(self, request: Request) -> Response:
            if (refused := guard.refuse(self, request)) is not None:
                return refused
            return _json(self, watch.as_dict())

    @app.page("/traces/{trace_id}")
    class TraceView(View):
        async def get(self, request: Request, trace_id: str) -> Response:
            if (refused := guard.refuse(self, request)) is not None:
                return refused
            if (problem := trace_id_problem(trace_id)) is not None:
                return _json(self, {"error": problem}, status=400)
            if "group" not in settings.worker.stages:
                return _json(self, {"error": "this worker does not run the group stage"}, status=404)
            stored = trace_table().lookup(trace_id.encode())
            if stored is None:
                return _json(self, {"error": "unknown trace", "traceId": trace_id,
                                    "hint": "closed traces are in the traces.closed topic"}, status=404)
            return _json(self, decode_state(stored))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return _json(self, {"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            reasons = [] if recovery_completed() else ["table recovery has not completed"]
            reasons += unready_sinks(settings, sinks, lag)
            return _json(self, {"ready": not reasons, "reasons": reasons, "native": native_status()},
                         status=503 if reasons else 200)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            if (refused := guard.refuse_metrics(self, request)) is not None:
                return refused
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
