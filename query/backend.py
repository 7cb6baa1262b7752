"""The one interface every store answers queries through, and the shape of what it answers.

A line comes back as the same JSON object from every backend (`StoredLine.as_json`), so the API,
the web page and the CLI never know which store they read. Backends are chosen by name through a
lazy registry, like sinks, so the API imports only the client it uses.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.errors import ConfigError
from core.models import LEVEL_RANK
from core.settings import Settings
from query.params import Cursor, LogQuery, TraceQuery

BACKENDS = {"postgres": "query.postgres_backend:PostgresBackend",
            "elasticsearch": "query.es_backend:ElasticsearchBackend"}


class QueryTimeout(Exception):
    """The store gave up on a query at api.statement_timeout."""


def iso_time(time_ns: int) -> str:
    """RFC 3339 with microseconds (what every backend keeps), always UTC."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    return _iso_second(seconds) + f".{ns // 1000:06d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """The lines of a page or a trace mostly share their seconds: format each second once."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(slots=True)
class StoredLine:
    """One stored line as a query returns it."""

    time_ns: int  # microsecond precision (PostgreSQL's); the ES backend truncates to match
    line_id: str
    trace_id: str
    service: str
    level: str
    message: str
    namespace: str
    pod: str
    container: str
    node: str
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"time": iso_time(self.time_ns), "time_ns": self.time_ns, "line_id": self.line_id,
                "trace_id": self.trace_id, "service": self.service, "level": self.level, "message": self.message,
                "namespace": self.namespace, "pod": self.pod, "container": self.container, "node": self.node,
                "attributes": self.attributes, "tags": self.tags}

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.time_ns, self.line_id)


@dataclass(slots=True)
class Page:
    lines: list[StoredLine]
    next_cursor: str | None


def derived_summary(trace_id: str, lines: list[StoredLine]) -> dict[str, Any] | None:
    """What the lines of a trace say about it (every backend can tell this; closed summaries are extra)."""
    if not lines:
        return None
    services: list[str] = []
    for line in lines:
        if line.service and line.service not in services:
            services.append(line.service)
    first, last = lines[0].time_ns, lines[-1].time_ns
    errors = sum(1 for line in lines if LEVEL_RANK.get(line.level, 0) >= LEVEL_RANK["error"])
    level = max((line.level for line in lines), key=lambda name: LEVEL_RANK.get(name, -1))
    return {"trace_id": trace_id, "first": iso_time(first), "last": iso_time(last), "lines": len(lines),
            "duration_ms": (last - first) / 1e6, "services": services, "errors": errors, "level": level}


class Backend(ABC):
    """A store the API reads. Every method is bounded by `api.statement_timeout`."""

    name: str

    @abstractmethod
    async def start(self) -> None:
        """Connect; raise core.errors.RetriableError when the store is away."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ready(self) -> bool:
        """True when the store answers a trivial query."""

    @abstractmethod
    async def search(self, query: LogQuery) -> Page: ...

    @abstractmethod
    async def trace_lines(self, trace_id: str, limit: int) -> list[StoredLine]:
        """Every line of a trace in time order (up to `limit`)."""

    async def closed_summary(self, trace_id: str) -> dict[str, Any] | None:
        """The latest closed summary of a trace, if this store keeps them."""
        return None

    async def trace(self, trace_id: str, limit: int) -> tuple[list[StoredLine], dict[str, Any] | None]:
        """`trace_lines` and `closed_summary` together (`GET /query/{trace_id}`); a store that can
        answer both in one request overrides this."""
        lines, summary = await asyncio.gather(self.trace_lines(trace_id, limit), self.closed_summary(trace_id))
        return lines, summary

    async def traces(self, query: TraceQuery) -> list[dict[str, Any]] | None:
        """Closed trace summaries; None when this store does not keep them."""
        return None


def create_backend(settings: Settings) -> Backend:
    target = BACKENDS[settings.api.backend]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"api.backend {settings.api.backend!r} needs a package that is not installed "
                          f"({exc.name}): pip install logweave") from exc
    backend: Backend = getattr(module, class_name)(settings)
    return backend
