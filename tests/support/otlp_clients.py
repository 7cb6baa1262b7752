"""The real OpenTelemetry SDK and its OTLP log exporters (gRPC and HTTP), as an application uses them:
stdlib logging through the SDK's LoggingHandler, inside a span so records carry trace and span ids."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

RESOURCE = {"service.name": "checkout", "k8s.namespace.name": "shop", "k8s.pod.name": "checkout-7f9",
            "k8s.container.name": "app", "deployment.environment": "test"}


def emit_logs(transport: str, endpoint: str, messages: list[str], token: str | None = None) -> list[tuple[str, str]]:
    """Log `messages` (one span each) through the SDK exporter; (trace id, span id) hex of each, in order."""
    headers = {"authorization": f"Bearer {token}"} if token else None
    exporter: Any
    if transport == "grpc":
        exporter = GrpcLogExporter(endpoint=endpoint, insecure=True, headers=headers, timeout=10)
    else:
        exporter = HttpLogExporter(endpoint=endpoint, headers=headers, timeout=10, compression=Compression.Gzip)
    provider = LoggerProvider(resource=Resource.create(RESOURCE))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=50))
    tracer = TracerProvider(resource=Resource.create(RESOURCE)).get_tracer("tests.intake")
    logger = logging.getLogger(f"intake-otlp-{transport}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    ids: list[tuple[str, str]] = []
    try:
        for index, message in enumerate(messages):
            with tracer.start_as_current_span("work") as span:
                context = span.get_span_context()
                ids.append((f"{context.trace_id:032x}", f"{context.span_id:016x}"))
                (logger.warning if index % 2 else logger.info)(message, extra={"order.id": index})
        assert provider.force_flush(20_000), "the SDK did not flush its logs"
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    return ids
