"""What OTLP over gRPC and over HTTP share: one export, from caller to partial-success answer.

Outcomes map to each transport's codes: `Unauthorized` (gRPC UNAUTHENTICATED, HTTP 401),
`RateLimited` (RESOURCE_EXHAUSTED / 429), `BrokerUnavailable`/`Overloaded` (UNAVAILABLE / 503; the
OpenTelemetry exporters retry both), and otherwise a response whose partial_success counts the
records rejected and names the first.
"""

from __future__ import annotations

import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from collectors.intake.auth import Caller
from collectors.intake.context import IntakeContext
from collectors.intake.otlp_mapping import map_request


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"over the rate limit; retry in {retry_after}s")
        self.retry_after = retry_after


async def export(ctx: IntakeContext, caller: Caller, request: ExportLogsServiceRequest, raw: bytes,
                 protocol: str) -> ExportLogsServiceResponse:
    """Store the request's valid records (raises RateLimited, BrokerUnavailable, Overloaded)."""
    mapped = map_request(request, raw, protocol, caller.tenant, ctx.settings.max_line_bytes, time.time_ns())
    ctx.metrics.reject_records(protocol, mapped.rejections)
    if mapped.lines:
        wait = ctx.rate_wait(caller, mapped.lines)
        if wait:
            ctx.metrics.reject(protocol, "rate_limited")
            raise RateLimited(wait)
        await ctx.delivery.store(mapped.chunks, protocol)
    if not mapped.rejected:
        return ExportLogsServiceResponse()
    return ExportLogsServiceResponse(partial_success=ExportLogsPartialSuccess(
        rejected_log_records=mapped.rejected, error_message=mapped.first_error))
