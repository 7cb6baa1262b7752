"""Settings of `logweave intake`, the push intake (HTTP, Fluent forward, OTLP), as one group.

Kept apart from core/settings.py because the intake has many knobs of its own (listeners, tenants,
limits); the Settings model holds them under the one field `intake`. Tokens are never stored in
clear: a tenant lists the SHA-256 of its bearer token (`printf %s TOKEN | sha256sum`).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.durations import ByteSize, Duration

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntakeTenant(_Group):
    """A tenant: its name is stamped on every line it sends (source `tenant` and label `tenant`)."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    # SHA-256 (hex) of bearer tokens for HTTP, OTLP/HTTP and gRPC metadata (`authorization: Bearer ...`)
    token_sha256: list[str] = []
    # Fluent forward shared key (the handshake proves it without sending it); empty: none
    forward_shared_key: SecretStr = SecretStr("")
    # syslog over TLS: client certificate subject common names that identify this tenant
    tls_client_names: list[str] = []
    rate_lines: float = Field(0.0, ge=0)  # token bucket refill in lines per second; 0: unlimited
    burst_lines: int = Field(0, ge=0)  # bucket size; 0: one second of rate_lines (at least 1 request)

    @field_validator("token_sha256", "tls_client_names", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("token_sha256")
    @classmethod
    def _hex_digests(cls, digests: list[str]) -> list[str]:
        for digest in digests:
            if not _SHA256_HEX.match(digest):
                raise ValueError("token_sha256 holds SHA-256 hex digests of tokens (64 lowercase hex "
                                 "characters, `printf %s TOKEN | sha256sum`), never the token itself")
        return digests


class IntakeSettings(_Group):
    host: str = "127.0.0.1"  # every listener binds here; 0.0.0.0 needs tenants or allow_anonymous
    http_port: int = Field(8080, ge=0, le=65535)  # POST /v1/logs, /healthz, /readyz, /metrics; 0: off
    forward_port: int = Field(24224, ge=0, le=65535)  # Fluent forward over TCP; 0: off
    otlp_grpc_port: int = Field(4317, ge=0, le=65535)  # 0: off
    otlp_http_port: int = Field(4318, ge=0, le=65535)  # 0: off
    syslog_port: int = Field(5514, ge=0, le=65535)  # RFC 5424 / 3164 over TCP (and UDP); 0: off
    syslog_udp: bool = True  # also listen on UDP syslog_port (best effort: counted, never acknowledged)
    syslog_tls_port: int = Field(0, ge=0, le=65535)  # syslog over TLS (RFC 5425); needs tls_cert_file
    tls_cert_file: Path | None = None  # server certificate chain (PEM) for syslog over TLS
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None  # set: clients must present a certificate signed by this CA
    # Plain TCP/UDP syslog carries no credential: with tenants configured it is accepted only when this
    # names the tenant to stamp on it (otherwise only syslog over TLS with client certificates is).
    syslog_plain_tenant: str = ""
    tenants: list[IntakeTenant] = []
    # Without tenants, requests need no credentials and are stamped tenant `anonymous`. That is only
    # allowed on a loopback host unless this is set.
    allow_anonymous: bool = False
    max_body_bytes: ByteSize = 8 * 1024 * 1024  # request body as sent (compressed or not)
    max_decoded_bytes: ByteSize = 32 * 1024 * 1024  # body after decompression: more is a bomb, refused
    max_records: int = Field(10_000, ge=1)  # records per request / forward message
    max_line_bytes: ByteSize = 1024 * 1024  # one record as a JSON line
    # per client address: forward connections, HTTP requests and gRPC calls in progress (and gRPC
    # streams per connection)
    max_connections_per_client: int = Field(64, ge=1)
    buffer_bytes: ByteSize = 32 * 1024 * 1024  # bytes handed to Kafka and not yet acknowledged
    ack_timeout: Duration = Field(10.0, gt=0)  # no Kafka ack within this: 503 / no forward ack
    retry_after: Duration = Field(5.0, gt=0)  # Retry-After on 503 (broker away or buffer full)
    forward_linger: Duration = Field(0.2, ge=0)  # Message-mode records without `chunk` gather this long
    forward_chunk_lines: int = Field(1000, ge=1)  # also for syslog streams
    syslog_linger: Duration = Field(0.2, ge=0)  # syslog lines of one connection gather this long
    # per source address, token bucket in lines: over it, UDP datagrams are dropped (counted, logged)
    # and TCP/TLS reads pause until the bucket allows the lines read; 0: unlimited
    syslog_rate_lines: float = Field(0.0, ge=0)
    syslog_burst_lines: int = Field(0, ge=0)  # bucket size; 0: one second of syslog_rate_lines
    broker_probe_interval: Duration = Field(2.0, gt=0)  # how often an idle intake checks Kafka for /readyz

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenants_from_text(cls, value: Any) -> Any:
        """Tenants given as one YAML/JSON string (an environment variable) are parsed."""
        return yaml.safe_load(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tenants_or_loopback(self) -> IntakeSettings:
        names = [t.name for t in self.tenants]
        if len(names) != len(set(names)):
            raise ValueError(f"tenant names must be unique (got {names})")
        if self.syslog_tls_port and not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("syslog_tls_port needs tls_cert_file and tls_key_file")
        if self.tenants or self.allow_anonymous:
            return self
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback:
            raise ValueError(f"host {self.host!r} is not a loopback address and no tenants are configured: "
                             "configure intake.tenants (tokens) or set intake.allow_anonymous=true")
        return self
