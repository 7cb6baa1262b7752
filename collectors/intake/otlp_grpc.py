"""OTLP logs over gRPC (`opentelemetry.proto.collector.logs.v1.LogsService/Export`, port 4317).

The bearer token comes in the `authorization` metadata (`Bearer <token>`), as the OpenTelemetry
exporters send their `headers`. Requests are limited to `max_body_bytes` by gRPC itself; calls in
progress per client address, and streams per connection, to `max_connections_per_client`.
"""

from __future__ import annotations

import logging
from collections import Counter

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from collectors.intake.auth import AuthError
from collectors.intake.context import IntakeContext
from collectors.intake.delivery import BrokerUnavailable, Overloaded
from collectors.intake.otlp_common import RateLimited, export

log = logging.getLogger(__name__)
PROTOCOL = "otlp_grpc"


def client_address(peer: str) -> str:
    """gRPC's peer (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`) without the port."""
    _, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0].strip("[]") or peer


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
    def __init__(self, ctx: IntakeContext) -> None:
        self.ctx = ctx
        self.active: Counter[str] = Counter()  # calls in progress per client address

    async def Export(self, request: ExportLogsServiceRequest,
                     context: grpc.aio.ServicerContext) -> ExportLogsServiceResponse:
        """At most `max_connections_per_client` calls in progress per client address, as for HTTP."""
        client, limit = client_address(context.peer()), self.ctx.settings.max_connections_per_client
        if self.active[client] >= limit:
            self.ctx.metrics.reject(PROTOCOL, "too_many_connections")
            self.ctx.metrics.requests.labels(PROTOCOL, "resource_exhausted").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"{client} has intake.max_connections_per_client ({limit}) calls in progress")
        self.active[client] += 1
        try:
            return await self._export(request, context)
        finally:
            self.active[client] -= 1
            if not self.active[client]:
                del self.active[client]

    async def _export(self, request: ExportLogsServiceRequest,
                      context: grpc.aio.ServicerContext) -> ExportLogsServiceResponse:
        metrics = self.ctx.metrics
        raw = request.SerializeToString(deterministic=True)
        metrics.bytes.labels(PROTOCOL).inc(len(raw))
        metadata = dict(context.invocation_metadata() or ())
        try:
            caller = self.ctx.tenants.bearer(metadata.get("authorization"))
        except AuthError as exc:
            metrics.reject(PROTOCOL, "unauthorized")
            metrics.requests.labels(PROTOCOL, "unauthenticated").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        try:
            response = await export(self.ctx, caller, request, raw, PROTOCOL)
        except RateLimited as exc:
            metrics.requests.labels(PROTOCOL, "resource_exhausted").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except (BrokerUnavailable, Overloaded) as exc:
            metrics.reject(PROTOCOL, "unavailable")
            metrics.requests.labels(PROTOCOL, "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; nothing was acknowledged, retry")
        metrics.requests.labels(PROTOCOL, "ok").inc()
        return response


async def start_grpc(ctx: IntakeContext, host: str, port: int) -> grpc.aio.Server:
    limit = ctx.settings.max_body_bytes
    # streams per HTTP/2 connection are capped too (a client queues the extra calls of one connection);
    # calls per client address are counted in Export
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.max_concurrent_streams", ctx.settings.max_connections_per_client)])
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(ctx), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    log.info("intake OTLP/gRPC listening on %s:%d", host, port)
    return server
