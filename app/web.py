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

from app.faust_app import recovery_completed
from app.stats import RateHistory, snapshot
from app.trace_tables import trace_table
from app.web_guard import WebGuard, quiet_bad_requests, trace_id_problem
from core.metrics import CONSUMER_LAG
from core.native import native_status
from core.settings import Settings
from tables.trace_state import decode_state

STATS_PAGE = (Path(__file__).parent / "static" / "stats.html").read_bytes()


def _json(view: View, data: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(data), content_type="application/json", status=status)


def refresh_lag(app: faust.App) -> None:
    consumer = app.consumer
    read_offsets = getattr(consumer, "_read_offset", {})
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        position = read_offsets.get(tp)
        if highwater is not None:
            consumed = (position + 1) if position is not None else 0
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - consumed))


def register(app: faust.App, settings: Settings) -> None:
    """Attach the views and the stats sampler to the App."""
    history = RateHistory()
    guard = WebGuard(settings.worker)
    quiet_bad_requests()

    @app.timer(2.0, name="stats_sampler")
    async def sample_stats() -> None:
        if app.consumer is not None and recovery_completed():
            refresh_lag(app)
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
                                "native": native_status()})

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
            ready = recovery_completed()
            return _json(self, {"ready": ready, "native": native_status()}, status=200 if ready else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            if (refused := guard.refuse_metrics(self, request)) is not None:
                return refused
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
