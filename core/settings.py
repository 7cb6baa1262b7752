"""All Logweave settings in one pydantic-settings model with nested groups.

Sources, highest priority first: explicit arguments, `LOGWEAVE_*` environment variables
(nested with `__`, e.g. `LOGWEAVE_SINKS__ETCD__TTL=48h`), the seed tool's unprefixed names
(BATCH_SIZE, BATCH_PERIOD, NAMESPACE, SELECTOR, ETCD_SERVERS, TTL, KAFKA_BROKERS), the YAML
config file (`LOGWEAVE_CONFIG` or `--config`), then defaults. Nothing is read at import time:
call `load_settings()`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.api_tokens import DEPRECATED_TOKEN_SETTINGS, AuthSettings, merged_digests, sha256_digests
from core.config_checks import Origins, error_message, explain, first_problem
from core.durations import ByteSize, Duration, Interval, PositiveSize
from core.errors import ConfigError
from core.intake_settings import IntakeSettings
from core.kafka_security import KafkaSecuritySettings
from core.log_metric_settings import LogMetricSettings
from core.parser_names import BUILTIN_PARSERS
from core.redact import mask_text
from core.rule_settings import LineMatch, MultilineSettings, ParserDef, ParserSource, Transforms
from core.settings_group import Group as Group  # re-exported: the base of every settings group
from core.sink_registry import check_sink_names, plugin_entry_points, plugin_settings_model, sink_names

log = logging.getLogger(__name__)

SEED_ALIASES: dict[str, tuple[str, ...]] = {
    "KAFKA_BROKERS": ("kafka", "brokers"),
    "BATCH_SIZE": ("sinks", "batch_size"),
    "BATCH_PERIOD": ("sinks", "batch_period"),
    "NAMESPACE": ("pods", "namespace"),
    "SELECTOR": ("pods", "selector"),
    "ETCD_SERVERS": ("sinks", "etcd", "servers"),
    "TTL": ("sinks", "etcd", "ttl"),
}
S3_MIN_PART = 5 * 1024 * 1024
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[^:\s/]+):\d{1,5}$")



def comma_list(value: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated setting (`a:9092, b:9092`)."""
    return [item.strip() for item in value.split(",") if item.strip()]

class KafkaSettings(Group):
    brokers: str = "localhost:9092"
    connect_timeout: Interval = 30.0  # how long a process retries an unreachable broker before it gives up
    topic_prefix: str = ""
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    max_message_bytes: PositiveSize = 1_000_000
    compression: Literal["none", "gzip", "lz4", "zstd"] = "none"  # Kafka batch compression (aiokafka)
    payload_codec: Literal["none", "lz4", "zstd"] = "lz4"  # chunk payload compression we apply ourselves
    # Rebalance behaviour (docs/operations.md): a member silent for session_timeout is dropped and its
    # partitions move; rebalance_timeout bounds how long members may take to rejoin a rebalance.
    session_timeout: Duration = 6.0
    heartbeat_interval: Duration = 1.0
    rebalance_timeout: Interval = 60.0
    commit_interval: Interval = 1.0
    linger: Duration = Field(0.01, le=1.0)  # how long a worker's producer may wait to fill a batch
    # how long a Kafka broker may hold a worker's fetch with nothing to return (fetch.max.wait.ms): a record
    # on a partition left out of the held fetch waits up to this long (docs/operations.md, "Fetch wait")
    fetch_max_wait: Duration = Field(0.1, ge=0.001, le=5.0)
    group_instance_id: str | None = None
    static_membership: bool = True  # KIP-345; turn off only for brokers without it
    # Bounds on the pipeline's delete-policy topics (logs.*, traces.closed, sink.*), set as retention.ms and
    # retention.bytes (per partition) when a topic is created; None: the broker's default. Existing topics
    # keep theirs. The trace table's changelog has its own (traces.changelog_retention, never a byte bound).
    topic_retention: Interval | None = None
    topic_retention_bytes: PositiveSize | None = None
    security: KafkaSecuritySettings = KafkaSecuritySettings()  # TLS and SASL (docs/security.md)

    @property
    def bootstrap_servers(self) -> list[str]:
        return comma_list(self.brokers)

    @field_validator("brokers")
    @classmethod
    def _host_ports(cls, brokers: str) -> str:
        servers = comma_list(brokers)
        bad = [s for s in servers if not _HOST_PORT.match(s)]
        if not servers or bad:
            raise ValueError(f"{'no broker given' if not servers else f'not host:port: {bad}'}; "
                             "allowed: a comma list of host:port, e.g. kafka-0:9092,kafka-1:9092")
        return brokers

    @model_validator(mode="after")
    def _rebalance_timings(self) -> KafkaSettings:
        if self.session_timeout < 6:
            raise ValueError(f"session_timeout {self.session_timeout}s: brokers refuse less than 6s; "
                             "allowed: 6s or more")
        if not 0 < self.heartbeat_interval <= self.session_timeout / 3:
            raise ValueError(f"heartbeat_interval {self.heartbeat_interval}s: allowed: more than 0 and at most a third "
                             f"of session_timeout ({self.session_timeout}s), so a missed heartbeat is not fatal")
        return self


class CollectorSettings(Group):
    paths: list[str] = ["/var/log/pods/*/*/*.log"]
    exclude: list[str] = []
    format: Literal["auto", "cri", "docker", "plain"] = "auto"
    read_from: Literal["head", "tail"] = "head"
    max_line_bytes: PositiveSize = 1024 * 1024
    chunk_lines: int = Field(1000, ge=1)
    chunk_bytes: PositiveSize = 512 * 1024
    flush_interval: Interval = 0.4  # files are read at least this often (more often while they hold a backlog)
    # new lines of all files bound for one logs.raw partition wait up to this long to share one record
    # (docs/chunk-format.md): more lines per record for the worker, this much more latency; 0 sends every pass.
    # 0.4 s, not 0.2: on 200 files x 20 lines/s the worker's CPU per line falls by a third and the collector's
    # by two fifths, for ~140 ms more p99 (docs/operations.md, "Collectors: lines per record")
    linger: Duration = 0.4
    rescan_interval: Interval = 1.0
    # while inotify watches every directory (it reports new, renamed and deleted files at once), the
    # rescan and a pass looking at every file, as a safety net, run only this often (never more often
    # than rescan_interval)
    inotify_rescan_interval: Interval = 10.0
    checkpoint_dir: Path = Path("var/checkpoints")
    checkpoint_interval: Interval = 2.0
    buffer_bytes: PositiveSize = 32 * 1024 * 1024
    ignore_older: Duration = 0.0
    node_name: str = Field(default_factory=lambda: os.uname().nodename)
    metrics_port: int = Field(9101, ge=0, le=65535)  # 0 disables the metrics endpoint
    metrics_host: str = "127.0.0.1"  # bind address of the metrics endpoint (0.0.0.0 for a scraper off the host)
    rotated_grace: Duration = 5.0  # a rotated/deleted file read to its end is closed after this long
    shutdown_timeout: Interval = 20.0  # flush in-flight chunks and save the checkpoint within this
    no_match_warning_interval: Interval = 60.0  # warn this often while `paths` match no file


class PodCollectorSettings(Group):
    namespace: str = "demo-system"  # one, a comma list, or `*` / `all` for every namespace
    selector: str = "app=snowplow"
    field_selector: str = ""
    kubeconfig: Path | None = None
    context: str | None = None
    config_mode: Literal["auto", "in-cluster", "kubeconfig"] = "auto"  # auto: in-cluster when in a pod
    label_keys: list[str] = ["app"]
    include_init_containers: bool = False
    max_streams: int = Field(500, ge=1)
    # Kafka in-flight budget (ChunkPublisher) and lines read but not yet handed to it (all streams): 8 and 4 MiB
    # keep 200 pods under ~130 MiB; larger budgets bought no throughput in tests/bench/bench_pod_collector.py
    buffer_bytes: PositiveSize = 8 * 1024 * 1024
    pending_bytes: PositiveSize = 4 * 1024 * 1024
    chunk_lines: int = Field(1000, ge=1)
    chunk_bytes: PositiveSize = 256 * 1024
    # a stream's lines are sent at the next tick of this interval, shared by every stream, so the streams'
    # lines bound for one logs.raw partition leave together as one record per tick: a line waits at most this
    # (as collector.linger: docs/operations.md, "Collectors: lines per record")
    flush_interval: Interval = 0.4
    max_line_bytes: PositiveSize = 1024 * 1024
    # bytes per socket read of a followed log; aiohttp pauses it past half of this: ~1.5x this per stream at most
    read_bufsize: PositiveSize = 32 * 1024
    # followed logs are read at each tick of flush_interval by one poll over all of them (collectors/pods/
    # polled_log.py; through a proxy always as below); false: each through aiohttp, its task paced to the ticks
    poll_logs: bool = True
    # polled follows setting up their connection (TCP, TLS handshake) at once: at a start or after an outage
    # a node's streams all open together; this bounds the collector's memory (a TLS handshake's buffers,
    # freed afterwards, stay in the heap: 1,000 at once took 260 MiB) and the API server's handshake burst
    max_opening: int = Field(32, ge=1)
    watch_timeout: Interval = 300.0  # server-side timeoutSeconds of one watch request
    backoff_initial: Interval = 0.5
    backoff_max: Interval = 30.0
    finish_grace: Duration = 30.0  # how long a deleted pod's streams may keep reading what is left
    position_interval: Interval = 1.0  # how often acknowledged positions are saved to logs.positions
    metrics_port: int = Field(9102, ge=0, le=65535)  # 0 disables the metrics endpoint
    metrics_host: str = "127.0.0.1"  # bind address of the metrics endpoint (0.0.0.0 for a scraper off the host)


class ParseSettings(Group):
    # Aliases, first match wins; a dotted name also matches nested objects. The defaults cover what common
    # loggers write by default (docs/parsing.md lists which logger uses which); the first name of each is
    # the one the C scan reads without help, so keep the most common spelling first.
    trace_id_fields: list[str] = ["traceId", "trace_id", "traceID", "trace.id", "TraceId", "@tr", "otelTraceID",
                                  "dd.trace_id", "mdc.traceId", "contextMap.traceId"]
    time_fields: list[str] = ["time", "timestamp", "@timestamp", "ts", "@t", "Timestamp", "timeUnixNano", "instant",
                              "timeMillis", "asctime"]
    level_fields: list[str] = ["level", "severity", "lvl", "log.level", "@l", "Level", "levelname", "SeverityText",
                               "severityText", "SeverityNumber", "severityNumber"]
    service_fields: list[str] = ["service", "app", "service.name", "Resource.service.name", "resource.service.name",
                                 "otelServiceName", "dd.service"]
    message_fields: list[str] = ["message", "msg", "@m", "@mt", "event", "RenderedMessage", "MessageTemplate", "Body",
                                 "body"]
    time_format: Literal["auto", "rfc3339", "epoch_s", "epoch_ms"] = "auto"
    untraced: Literal["deadletter", "pass"] = "deadletter"
    max_line_bytes: PositiveSize = 1024 * 1024
    reserved_key: str = "logweave"
    # Text parsers (docs/parsing.md): named definitions, which sources use them (a pod annotation
    # `logweave.io/parser: name[,name]` overrides), and what happens to a line none of them matches.
    parsers: list[ParserDef] = []
    sources: list[ParserSource] = []
    unmatched: Literal["message", "deadletter"] = "message"
    # Batching (docs/architecture.md, "Lingers"): the parse stage merges the lines of the records it
    # reads within `linger` into one logs.parsed chunk per partition; it sends sooner once it holds
    # `batch_lines` lines or `batch_records` records, or `eager_lines` lines and no further record
    # is waiting. Each hop's linger adds to the latency while the input is slow.
    linger: Duration = Field(0.03, le=5.0)
    batch_lines: int = Field(5000, ge=1)
    batch_records: int = Field(1000, ge=1)
    eager_lines: int = Field(128, ge=1)

    @model_validator(mode="after")
    def _known_parser_names(self) -> ParseSettings:
        names = [p.name for p in self.parsers]
        duplicate = sorted({n for n in names if names.count(n) > 1})
        if duplicate:
            raise ValueError(f"parser name(s) {duplicate} defined more than once")
        known = set(names) | set(BUILTIN_PARSERS)
        for index, source in enumerate(self.sources):
            unknown = [n for n in source.parsers if n not in known]
            if unknown:
                raise ValueError(f"sources[{index}] names unknown parser(s) {unknown}; allowed: parsers defined in "
                                 f"parse.parsers or built-in {', '.join(sorted(BUILTIN_PARSERS))}")
        return self


class TraceSettings(Group):
    gap: Interval = 30.0
    max_duration: Interval = 300.0
    allowed_lateness: Duration = 5.0
    sample_lines: int = Field(5, ge=0, le=1000)
    close_check_interval: Interval = 1.0
    max_held_per_trace: int = Field(10_000, ge=1)
    max_held_per_partition: int = Field(200_000, ge=1)  # bounds held lines in total (x partitions owned)
    # past a hold bound: release the trace's held and later lines to the trace rules' sinks unselected, or drop them
    held_overflow: Literal["release", "drop"] = "release"
    changelog_retention: Interval = 86400.0
    stream_retention: Interval = 7 * 86400.0  # replays of a stream idle longer than this are re-applied


    @field_validator("held_overflow", mode="before")
    @classmethod
    def _forward_is_release(cls, value: Any) -> Any:
        return "release" if value == "forward" else value  # the name before release sent held lines too


class RouteRule(LineMatch):
    """A routing rule: every predicate given must match; `mode` picks per-line or whole-trace."""

    name: str
    sinks: list[str]
    mode: Literal["line", "trace"] = "line"
    transforms: Transforms = Transforms()

    @field_validator("sinks")
    @classmethod
    def _known_sinks(cls, sinks: list[str]) -> list[str]:
        return check_sink_names(sinks)


class RoutingSettings(Group):
    rules: list[RouteRule] = []


class RetrySettings(Group):
    initial_backoff: Interval = 0.2
    max_backoff: Interval = 30.0
    breaker_failures: int = Field(5, ge=1)
    breaker_reset: Interval = 10.0


class FileSinkSettings(Group):
    directory: Path = Path("var/out")
    rotate_bytes: PositiveSize = 64 * 1024 * 1024
    # One batch is one append, two fsyncs and one position-file update, whatever its size: the file sink
    # takes far larger batches than the network sinks' `sinks.batch_size` / `batch_bytes` (docs/sinks.md).
    batch_lines: int = Field(50_000, ge=1)
    batch_bytes: PositiveSize = 16 * 1024 * 1024
    # after a batch's fsync, drop its pages from the page cache (posix_fadvise DONTNEED): nothing reads a
    # segment back soon, and the next appends reuse those pages instead of growing the cache (docs/sinks.md)
    drop_written_pages: bool = True


def _certificate_pair(cert_file: Path | None, key_file: Path | None, cert_name: str, key_name: str) -> None:
    """A client certificate needs its key: refuse one of the pair without the other, by name."""
    if (cert_file is None) != (key_file is None):
        given, missing = (cert_name, key_name) if key_file is None else (key_name, cert_name)
        raise ValueError(f"{given} is set without {missing}: a client certificate needs both; "
                         "allowed: both or neither")


class EtcdSinkSettings(Group):
    servers: str = "http://127.0.0.1:2379"
    prefix: str = "/logweave"
    ttl: Interval = 48 * 3600.0
    lease_bucket: Interval = 3600.0
    # transactions sent at once (across the batches the drain writes together): etcd answers a request after
    # its WAL fsync, and requests in flight together share one; 1 sends them one after another
    inflight_txns: int = Field(4, ge=1, le=64)
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def endpoints(self) -> list[str]:
        return comma_list(self.servers)

    @field_validator("servers")
    @classmethod
    def _some_servers(cls, servers: str) -> str:
        if not comma_list(servers):
            raise ValueError("no server given; allowed: a comma list of URLs, e.g. http://127.0.0.1:2379")
        return servers


class ElasticsearchSinkSettings(Group):
    url: str = "http://127.0.0.1:9200"
    mode: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    index_prefix: str = "logweave"
    index_date_format: str = "%Y.%m.%d"
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    verify_certs: bool = True
    # SHA-256 fingerprint of the server's certificate (hex, colons allowed): pinned instead of a CA
    ssl_assert_fingerprint: str | None = Field(None, pattern=r"^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$")
    client_cert_file: Path | None = None  # mTLS: the client certificate (PEM) and its key
    client_key_file: Path | None = None
    # Amazon OpenSearch Service: sign every request with AWS SigV4 (mode: opensearch). Credentials come
    # from these settings or, when unset, botocore's chain (AWS_ACCESS_KEY_ID/..., web identity, IMDS).
    aws_sigv4: bool = False
    aws_region: str | None = None
    aws_service: Literal["es", "aoss"] = "es"  # `aoss` for OpenSearch Serverless
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> ElasticsearchSinkSettings:
        # api_key together with username/password is refused by core/config_checks.py (naming both sources)
        if self.aws_sigv4:
            if self.mode != "opensearch":
                raise ValueError("aws_sigv4 needs mode: opensearch (Amazon OpenSearch Service)")
            if self.api_key is not None or self.username is not None:
                raise ValueError("aws_sigv4 signs every request: unset api_key and username")
            if not self.aws_region:
                raise ValueError("aws_sigv4 needs aws_region (e.g. eu-west-1)")
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("aws_access_key_id and aws_secret_access_key go together; "
                             "allowed: both, or neither (botocore's credential chain)")
        _certificate_pair(self.client_cert_file, self.client_key_file, "client_cert_file", "client_key_file")
        return self


class ObjectStoreSinkSettings(Group):
    """What every object-store sink (S3, GCS) shares: where objects go and how big they grow."""

    bucket: str = "logweave"
    prefix: str = "logs"
    flush_bytes: PositiveSize = 8 * 1024 * 1024
    flush_age: Interval = 60.0
    max_future_skew: Duration = 86400.0  # lines timed further ahead of the clock are dead-lettered
    # gzip level of data objects: 1 deflates ~2x faster than 5 for ~8% larger objects (docs/sinks.md)
    compression_level: int = Field(1, ge=1, le=9)


class S3SinkSettings(ObjectStoreSinkSettings):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    multipart_threshold: PositiveSize = 16 * 1024 * 1024
    part_size: ByteSize = 8 * 1024 * 1024
    create_bucket: bool = False  # create a missing bucket at start (development); else a missing one is an error
    # Server-side encryption of every object: `none` leaves it to the bucket's default encryption
    server_side_encryption: Literal["none", "AES256", "aws:kms"] = "none"
    sse_kms_key_id: str | None = None  # with aws:kms: the key id or ARN (unset: the account's aws/s3 key)

    @field_validator("part_size")
    @classmethod
    def _s3_minimum_part(cls, size: int) -> int:
        if size < S3_MIN_PART:
            raise ValueError("S3 refuses multipart parts under 5 MiB; allowed: 5MiB or more")
        return size

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> S3SinkSettings:
        if self.sse_kms_key_id and self.server_side_encryption != "aws:kms":
            raise ValueError(f"sse_kms_key_id is set but server_side_encryption is "
                             f"{self.server_side_encryption!r}; allowed: server_side_encryption: aws:kms")
        return self


class GcsSinkSettings(ObjectStoreSinkSettings):
    """`sinks.gcs`: Google Cloud Storage; `endpoint_url` points at an emulator (no credentials sent)."""

    endpoint_url: str | None = None
    project: str | None = None  # creates a missing bucket in this project; None: a missing bucket is an error
    service_file: Path | None = None  # service-account JSON; default: the application default credentials
    resumable_threshold: ByteSize = 8 * 1024 * 1024  # larger objects go up as resumable uploads
    resumable_chunk: ByteSize = 8 * 1024 * 1024  # bytes per request of a resumable upload (n x 256 KiB)
    timeout: Duration = Field(120.0, gt=0)

    @field_validator("resumable_chunk")
    @classmethod
    def _whole_quanta(cls, size: int) -> int:
        if size <= 0 or size % (256 * 1024):
            raise ValueError(f"{size} bytes: GCS takes resumable chunks in multiples of 256KiB; allowed: 256KiB, "
                             "512KiB, ... (e.g. 8MiB)")
        return size


class KafkaSinkSettings(Group):
    """`sinks.kafka`: its own cluster (empty `brokers`: the pipeline's, with the pipeline's security)
    and topic; `security` (TLS, SASL) is the same model as `kafka.security` and applies to `brokers`."""

    brokers: str = ""
    security: KafkaSecuritySettings = Field(default_factory=KafkaSecuritySettings)
    topic: str = "logweave.lines"
    record: Literal["line", "trace"] = "line"  # one record per line, or per trace (its lines as NDJSON)
    topic_partitions: int = Field(4, ge=1, le=1024)  # when the sink creates its topic
    replication_factor: int = Field(1, ge=1)
    compression: Literal["none", "gzip", "lz4", "zstd"] = "none"
    max_message_bytes: ByteSize = 1_000_000
    linger: Duration = Field(0.005, le=1.0)
    # prefix of the per-partition transactional ids (`<prefix>.<sink topic>.<partition>`); default
    # `<worker.app_id>.sink.kafka`, the same on every worker so a partition's next owner fences the last
    transactional_id: str | None = None
    transaction_timeout: Duration = Field(60.0, ge=1.0, le=900.0)
    # per-stream marks, one record of `<topic>.marks` per batch (about 30 bytes a stream): below max_message_bytes
    marks_bytes: ByteSize = Field(900_000, ge=64)
    max_batch_lines: int = Field(50_000, ge=1)  # one transaction per batch
    max_batch_bytes: ByteSize = 32 * 1024 * 1024
    flush_age: Duration = 1.0

    @property
    def bootstrap_servers(self) -> list[str]:
        return comma_list(self.brokers)

    @model_validator(mode="after")
    def _marks_fit_a_message(self) -> KafkaSinkSettings:
        if self.marks_bytes > self.max_message_bytes - 1024:
            raise ValueError(f"sinks.kafka.marks_bytes ({self.marks_bytes}) must stay 1 KiB below "
                             f"sinks.kafka.max_message_bytes ({self.max_message_bytes}): the marks are one record")
        return self


class PostgresSinkSettings(Group):
    """`sinks.postgres`: where the store is and how long it keeps day partitions.

    `dsn` may carry the password; `password` (or `password_file`/`dsn_file`, read at start so a
    Kubernetes Secret can be mounted) overrides it. Secrets print as '********' in check-config.
    """

    dsn: SecretStr = SecretStr("postgresql://logweave@127.0.0.1:5432/logweave")
    dsn_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    retention: Duration = Field(7 * 86400.0, ge=0)  # whole day partitions older than this are dropped; 0 keeps all
    partitions_ahead: int = Field(2, ge=1, le=60)  # day partitions created ahead of today
    pool_size: int = Field(4, ge=1, le=100)
    connect_timeout: Duration = 10.0
    maintenance_interval: Duration = 3600.0  # how often the sink creates partitions ahead and applies retention

    def resolved_dsn(self) -> str:
        """The DSN to connect with, reading `dsn_file` when set (blocking: call off the event loop)."""
        if self.dsn_file is not None:
            return _read_secret_file(self.dsn_file, "sinks.postgres.dsn_file")
        return self.dsn.get_secret_value()

    def resolved_password(self) -> str | None:
        if self.password_file is not None:
            return _read_secret_file(self.password_file, "sinks.postgres.password_file")
        return self.password.get_secret_value() if self.password else None


def _read_secret_file(path: Path, setting: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"invalid setting {setting} = {str(path)!r}: cannot read it ({exc.strerror})") from None


class SinkSettings(Group):
    """Shared batching and retry settings, one group per built-in sink, and plugins' groups.

    A plugin's group (`sinks.<name>`, found through the `logweave.sinks` entry points) is kept as an
    extra key and validated against the plugin's own model; any other unknown key is refused.
    """

    model_config = ConfigDict(extra="allow")

    enabled: list[str] = ["file"]
    batch_size: int = Field(1000, ge=1)
    batch_bytes: PositiveSize = 4 * 1024 * 1024
    batch_period: Interval = 0.25  # the longest a drain waits to fill a batch: part of every line's latency
    retry: RetrySettings = RetrySettings()
    # /readyz fails while a sink is not delivering (starting, failing, breaker open) with more records than this
    # waiting in its topic on this worker
    readiness_backlog: int = Field(100, ge=0)
    file: FileSinkSettings = FileSinkSettings()
    etcd: EtcdSinkSettings = EtcdSinkSettings()
    elasticsearch: ElasticsearchSinkSettings = ElasticsearchSinkSettings()
    s3: S3SinkSettings = S3SinkSettings()
    kafka: KafkaSinkSettings = KafkaSinkSettings()
    gcs: GcsSinkSettings = GcsSinkSettings()
    postgres: PostgresSinkSettings = PostgresSinkSettings()

    @field_validator("enabled")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError(f"no sink enabled; allowed: at least one of {', '.join(sink_names())}")
        return check_sink_names(names)

    @model_validator(mode="after")
    def _plugin_groups(self) -> SinkSettings:
        groups = self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}
        plugins = plugin_entry_points()
        for key, value in groups.items():
            if key not in plugins:
                raise _setting_error(f"sinks.{key}", value, "unknown setting (check the spelling against "
                                     "`logweave check-config`; a plugin's group needs its package installed)")
        for name in [n for n in plugins if n in groups or n in self.enabled]:
            raw = groups.get(name, {})
            if isinstance(raw, BaseModel):
                continue
            try:
                groups[name] = plugin_settings_model(name).model_validate(raw)
            except ConfigError as exc:
                raise _setting_error(f"sinks.{name}", raw, str(exc)) from None
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                value = None if first["type"] == "missing" else first.get("input")  # not the whole group
                message = "required, and not set" if first["type"] == "missing" else error_message(first)
                raise _setting_error(f"sinks.{name}.{where}".rstrip("."), value, message) from None
        return self

    def plugin(self, name: str) -> BaseModel:
        """A plugin sink's validated settings group (`sinks.<name>`)."""
        group = (self.__pydantic_extra__ or {}).get(name)
        if not isinstance(group, BaseModel):
            raise ConfigError(f"sinks.{name}: no settings group for sink plugin {name!r} (is it installed?)")
        return group


def _setting_error(setting: str, value: Any, message: str) -> PydanticCustomError:
    """An error that names a setting below the group that raised it (see _explain)."""
    return PydanticCustomError("setting_error", "{message}", {"message": message, "setting": setting,
                                                              "value": value})


class WorkerSettings(Group):
    app_id: str = "logweave"
    data_dir: Path = Path("var/worker")
    web_host: str = "127.0.0.1"  # manifests bind 0.0.0.0 behind a NetworkPolicy
    web_port: int = Field(6066, ge=1, le=65535)
    # Deprecated: use auth.token_hashes (merged into it, with a warning at load).
    api_tokens: list[str] = []
    metrics_require_token: bool = False
    web_cert_file: Path | None = None  # serve the web port over TLS with this certificate and web_key_file
    web_key_file: Path | None = None
    standby_replicas: int = Field(0, ge=0)
    # RocksDB memory per table partition the worker holds (active or standby): block cache plus up to
    # two write buffers. faust's defaults (2 GiB cache, 3 x 64 MiB buffers, per partition) let a
    # worker's memory creep up for hours; these bound it.
    rocksdb_block_cache: PositiveSize = 32 * 1024 * 1024
    rocksdb_write_buffer: PositiveSize = 16 * 1024 * 1024
    # The trace table's recent values kept in memory (tables/read_cache.py): each stream's mark and each
    # open trace are read many times a second on a node of slow writers; past this size it is refilled.
    table_read_cache: PositiveSize = 32 * 1024 * 1024
    # Stages this worker runs. A worker group with fewer stages needs its own app_id (consumer group):
    # e.g. dedicated drain workers scale apart from the stream workers.
    stages: list[Literal["parse", "group", "drain"]] = ["parse", "group", "drain"]
    # Under a backlog, the group stage applies the small logs.parsed records it reads back to back
    # as one, for up to group_linger or group_batch_lines lines (docs/architecture.md, "Lingers").
    group_linger: Duration = Field(0.01, le=5.0)
    group_batch_lines: int = Field(5000, ge=1)
    # The group stage's table updates whose outputs are acked wait up to this long and are persisted
    # together: one RocksDB write and one changelog record per partition, each key once (tables/trace_table.py).
    # Its inputs are acked after that persist; 0 persists every update at once.
    table_persist_interval: Duration = Field(0.5, ge=0, le=5.0)
    # ... or sooner, once they make a changelog record this large (capped at half of kafka.max_message_bytes):
    # larger saves more writes of the same keys, and holds the event loop longer per persist at high rates.
    table_persist_bytes: PositiveSize = 64 * 1024

    @field_validator("api_tokens")
    @classmethod
    def _token_hashes(cls, hashes: list[str]) -> list[str]:
        return sha256_digests(hashes)

    @model_validator(mode="after")
    def _web_tls_pair(self) -> WorkerSettings:
        if (self.web_cert_file is None) != (self.web_key_file is None):
            raise ValueError("worker.web_cert_file and worker.web_key_file (LOGWEAVE_WORKER__WEB_CERT_FILE, "
                             "LOGWEAVE_WORKER__WEB_KEY_FILE) go together; set both or neither")
        for name, path in (("web_cert_file", self.web_cert_file), ("web_key_file", self.web_key_file)):
            if path is not None and not path.is_file():
                raise ValueError(f"worker.{name} (LOGWEAVE_WORKER__{name.upper()}) = '{path}': no such file")
        return self


class ApiSettings(Group):
    """`api`: the query API (`logweave api`) that reads stored lines back, and its clients' defaults."""

    host: str = "127.0.0.1"
    port: int = Field(8081, ge=1, le=65535)
    backend: Literal["postgres", "elasticsearch"] = "postgres"  # reads sinks.<backend>'s store
    # Deprecated: use auth.token_hashes (merged into it, with a warning at load).
    token_hashes: list[str] = []
    default_window: Duration = Field(3600.0, gt=0)  # /query without `from`: the last hour before `to`
    max_window: Duration = Field(31 * 86400.0, gt=0)  # widest from..to a query may ask for
    statement_timeout: Duration = Field(10.0, gt=0)  # bounds any one query on the store
    # PostgreSQL's effective_io_concurrency on the API's connections: table pages a bitmap heap scan
    # asks the kernel for ahead (0 for a server without posix_fadvise, such as macOS)
    io_concurrency: int = Field(32, ge=0, le=1000)
    max_limit: int = Field(1000, ge=1, le=10_000)
    max_trace_lines: int = Field(10_000, ge=1, le=100_000)
    tail_sink: str = ""  # sink topic /tail reads (sink.<name>); empty: the backend's sink
    url: str = "http://127.0.0.1:8081"  # where `logweave query/trace/tail` find the API
    token: SecretStr | None = None  # the token those commands send
    token_file: Path | None = None

    @field_validator("token_hashes")
    @classmethod
    def _hex_digests(cls, hashes: list[str]) -> list[str]:
        return sha256_digests(hashes)

    def client_token(self) -> str | None:
        if self.token_file is not None:
            return _read_secret_file(self.token_file, "api.token_file")
        return self.token.get_secret_value() if self.token else None


class HeartbeatSettings(Group):
    """`heartbeats`: every component's figures on the compacted stats.heartbeats topic (docs/operations.md)."""

    enabled: bool = True
    interval: Interval = Field(5.0, le=300.0)  # seconds between beats; silent for 3 intervals shows as missing
    # a component silent this long is dropped from every view and from the heartbeat age gauges (its alert ends)
    forget_after: Interval = 6 * 3600.0


class Settings(BaseSettings):
    """The effective configuration of every Logweave process."""

    model_config = SettingsConfigDict(env_prefix="LOGWEAVE_", env_nested_delimiter="__", extra="forbid")

    kafka: KafkaSettings = KafkaSettings()
    collector: CollectorSettings = CollectorSettings()
    pods: PodCollectorSettings = PodCollectorSettings()
    heartbeats: HeartbeatSettings = HeartbeatSettings()
    parse: ParseSettings = ParseSettings()
    multiline: MultilineSettings = MultilineSettings()
    traces: TraceSettings = TraceSettings()
    routing: RoutingSettings = RoutingSettings()
    log_metrics: LogMetricSettings = LogMetricSettings()
    sinks: SinkSettings = SinkSettings()
    worker: WorkerSettings = WorkerSettings()
    intake: IntakeSettings = IntakeSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()

    @model_validator(mode="after")
    def _one_token_list(self) -> Settings:
        """auth.token_hashes is the one list of reader tokens; the deprecated names are merged into it."""
        self.auth.token_hashes = merged_digests(self.auth.token_hashes, self.worker.api_tokens, self.api.token_hashes)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    def instance_name(self) -> str:
        """This worker's stable name: `kafka.group_instance_id`, else the pod name (HOSTNAME) and web port.

        The static member id of its consumer, and the stem of transactional ids, so a restarted worker
        takes over (and fences) what its previous incarnation held.
        """
        if self.kafka.group_instance_id:
            return self.kafka.group_instance_id
        host = os.environ.get("HOSTNAME") or socket.gethostname()
        return f"{self.worker.app_id}-{host}-{self.worker.web_port}"

    def topic(self, name: str) -> str:
        """Full topic name for a logical name (`logs.raw`, `sink.file`, ...)."""
        return f"{self.kafka.topic_prefix}{name}"


def _seed_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, path in SEED_ALIASES.items():
        if name in environ:
            node = nested
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = environ[name]
    return nested


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# LOGWEAVE_ variables that are not settings: the config file's path, and the switch to the Python
# reference paths that core/native.py reads (a process started with it must still load its settings)
NOT_SETTINGS = frozenset({"LOGWEAVE_CONFIG", "LOGWEAVE_PURE"})


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the effective settings; raise ConfigError with a one-line explanation if invalid."""
    env = os.environ if environ is None else environ
    path = config_file or env.get("LOGWEAVE_CONFIG")
    from_file: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(mask_text(f"config file {path}: not valid YAML ({exc})")) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of setting groups at the top level")
        from_file = loaded
    origins = Origins()
    origins.add(from_file, f"config file {path}")
    seed = _seed_overrides(env)
    origins.add(seed, {path: name for name, path in SEED_ALIASES.items()})
    base = _merge(from_file, seed)
    nested: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("LOGWEAVE_") or key in NOT_SETTINGS:
            continue
        parts = key.removeprefix("LOGWEAVE_").lower().split("__")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"invalid setting {key}: {'.'.join(parts[:-1])} is not a group of settings")
            node = child
        node[parts[-1]] = value
    origins.add(nested, {tuple(k.removeprefix("LOGWEAVE_").lower().split("__")): k for k in env
                         if k.startswith("LOGWEAVE_") and k not in NOT_SETTINGS})
    origins.add(overrides, "argument")
    try:
        settings = Settings(**_merge(_merge(base, nested), overrides))
    except ValidationError as exc:
        raise ConfigError(explain(exc, origins)) from None
    problem = first_problem(settings, origins)
    if problem is not None:
        raise ConfigError(problem)
    _warn_deprecated_token_settings(settings, origins)
    return settings


def _warn_deprecated_token_settings(settings: Settings, origins: Origins) -> None:
    for group, name in DEPRECATED_TOKEN_SETTINGS:
        if getattr(getattr(settings, group), name):
            log.warning("%s.%s (%s) is deprecated: use auth.token_hashes (LOGWEAVE_AUTH__TOKEN_HASHES); its "
                        "digests are read into auth.token_hashes, which guards every route that returns log "
                        "content, on the worker and on the query API", group, name, origins.of((group, name)))
