"""All Logweave settings in one pydantic-settings model with nested groups.

Sources, highest priority first: explicit arguments, `LOGWEAVE_*` environment variables
(nested with `__`, e.g. `LOGWEAVE_SINKS__ETCD__TTL=48h`), the seed tool's unprefixed names
(BATCH_SIZE, BATCH_PERIOD, NAMESPACE, SELECTOR, ETCD_SERVERS, TTL, KAFKA_BROKERS), the YAML
config file (`LOGWEAVE_CONFIG` or `--config`), then defaults. Nothing is read at import time:
call `load_settings()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.durations import ByteSize, Duration
from core.errors import ConfigError
from core.parser_names import BUILTIN_PARSERS
from core.rule_settings import MultilineSettings, ParserDef, ParserSource, Transforms
from core.settings_group import Group as Group  # re-exported: the base of every settings group

SEED_ALIASES: dict[str, tuple[str, ...]] = {
    "KAFKA_BROKERS": ("kafka", "brokers"),
    "BATCH_SIZE": ("sinks", "batch_size"),
    "BATCH_PERIOD": ("sinks", "batch_period"),
    "NAMESPACE": ("pods", "namespace"),
    "SELECTOR": ("pods", "selector"),
    "ETCD_SERVERS": ("sinks", "etcd", "servers"),
    "TTL": ("sinks", "etcd", "ttl"),
}
SINK_NAMES = ("file", "etcd", "elasticsearch", "s3")


class KafkaSettings(Group):
    brokers: str = "localhost:9092"
    topic_prefix: str = ""
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    max_message_bytes: ByteSize = 1_000_000
    compression: Literal["none", "gzip", "lz4", "zstd"] = "none"  # Kafka batch compression (aiokafka)
    payload_codec: Literal["none", "lz4", "zstd"] = "lz4"  # chunk payload compression we apply ourselves
    # Rebalance behaviour (docs/operations.md): a member silent for session_timeout is dropped and its
    # partitions move; rebalance_timeout bounds how long members may take to rejoin a rebalance.
    session_timeout: Duration = 6.0
    heartbeat_interval: Duration = 1.0
    rebalance_timeout: Duration = 60.0
    commit_interval: Duration = 1.0
    linger: Duration = Field(0.01, le=1.0)  # how long a worker's producer may wait to fill a batch
    group_instance_id: str | None = None
    static_membership: bool = True  # KIP-345; turn off only for brokers without it

    @property
    def bootstrap_servers(self) -> list[str]:
        return [b.strip() for b in self.brokers.split(",") if b.strip()]

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
    max_line_bytes: ByteSize = 1024 * 1024
    chunk_lines: int = Field(1000, ge=1)
    chunk_bytes: ByteSize = 512 * 1024
    flush_interval: Duration = 0.2
    rescan_interval: Duration = 1.0
    checkpoint_dir: Path = Path("var/checkpoints")
    checkpoint_interval: Duration = 2.0
    buffer_bytes: ByteSize = 32 * 1024 * 1024
    ignore_older: Duration = 0.0
    node_name: str = Field(default_factory=lambda: os.uname().nodename)
    metrics_port: int = Field(9101, ge=0, le=65535)  # 0 disables the metrics endpoint
    rotated_grace: Duration = 5.0  # a rotated/deleted file read to its end is closed after this long
    shutdown_timeout: Duration = 20.0  # flush in-flight chunks and save the checkpoint within this


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
    buffer_bytes: ByteSize = 32 * 1024 * 1024  # Kafka in-flight budget (ChunkPublisher)
    pending_bytes: ByteSize = 16 * 1024 * 1024  # lines read but not yet handed to the publisher, all streams
    chunk_lines: int = Field(1000, ge=1)
    chunk_bytes: ByteSize = 256 * 1024
    flush_interval: Duration = 0.2
    max_line_bytes: ByteSize = 1024 * 1024
    read_bufsize: ByteSize = 64 * 1024  # aiohttp read buffer per connection (bounds memory per stream)
    watch_timeout: Duration = 300.0  # server-side timeoutSeconds of one watch request
    backoff_initial: Duration = 0.5
    backoff_max: Duration = 30.0
    finish_grace: Duration = 30.0  # how long a deleted pod's streams may keep reading what is left
    metrics_port: int = Field(9102, ge=0, le=65535)  # 0 disables the metrics endpoint


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
    max_line_bytes: ByteSize = 1024 * 1024
    reserved_key: str = "logweave"
    # Text parsers (docs/parsing.md): named definitions, which sources use them (a pod annotation
    # `logweave.io/parser: name[,name]` overrides), and what happens to a line none of them matches.
    parsers: list[ParserDef] = []
    sources: list[ParserSource] = []
    unmatched: Literal["message", "deadletter"] = "message"

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
    gap: Duration = 30.0
    max_duration: Duration = 300.0
    allowed_lateness: Duration = 5.0
    sample_lines: int = Field(5, ge=0, le=1000)
    close_check_interval: Duration = 1.0
    max_held_per_trace: int = Field(10_000, ge=1)
    max_held_per_partition: int = Field(200_000, ge=1)  # bounds held lines in total (x partitions owned)
    held_overflow: Literal["drop", "forward"] = "drop"
    changelog_retention: Duration = 86400.0
    stream_retention: Duration = 7 * 86400.0  # replays of a stream idle longer than this are re-applied


class RouteRule(Group):
    """A routing rule: every predicate given must match; `mode` picks per-line or whole-trace."""

    name: str
    sinks: list[str]
    mode: Literal["line", "trace"] = "line"
    level_at_least: str | None = None
    service: list[str] | None = None
    namespace: list[str] | None = None
    labels: dict[str, str] = {}
    fields: dict[str, str] = {}
    regex: dict[str, str] = {}
    transforms: Transforms = Transforms()

    @field_validator("sinks")
    @classmethod
    def _known_sinks(cls, sinks: list[str]) -> list[str]:
        unknown = [s for s in sinks if s not in SINK_NAMES]
        if unknown:
            raise ValueError(f"unknown sink(s) {unknown}; allowed: {', '.join(SINK_NAMES)}")
        return sinks


class RoutingSettings(Group):
    rules: list[RouteRule] = []


class RetrySettings(Group):
    initial_backoff: Duration = 0.2
    max_backoff: Duration = 30.0
    breaker_failures: int = Field(5, ge=1)
    breaker_reset: Duration = 10.0


class FileSinkSettings(Group):
    directory: Path = Path("var/out")
    rotate_bytes: ByteSize = 64 * 1024 * 1024


class EtcdSinkSettings(Group):
    servers: str = "http://127.0.0.1:2379"
    prefix: str = "/logweave"
    ttl: Duration = 48 * 3600.0
    lease_bucket: Duration = 3600.0
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def endpoints(self) -> list[str]:
        return [s.strip() for s in self.servers.split(",") if s.strip()]


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


class S3SinkSettings(Group):
    bucket: str = "logweave"
    prefix: str = "logs"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    flush_bytes: ByteSize = 8 * 1024 * 1024
    flush_age: Duration = 60.0
    multipart_threshold: ByteSize = 16 * 1024 * 1024
    part_size: ByteSize = 8 * 1024 * 1024


class SinkSettings(Group):
    enabled: list[str] = ["file"]
    batch_size: int = Field(1000, ge=1)
    batch_bytes: ByteSize = 4 * 1024 * 1024
    batch_period: Duration = 1.0
    retry: RetrySettings = RetrySettings()
    file: FileSinkSettings = FileSinkSettings()
    etcd: EtcdSinkSettings = EtcdSinkSettings()
    elasticsearch: ElasticsearchSinkSettings = ElasticsearchSinkSettings()
    s3: S3SinkSettings = S3SinkSettings()

    @field_validator("enabled")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in SINK_NAMES]
        if unknown:
            raise ValueError(f"unknown sink(s) {unknown}; allowed: {', '.join(SINK_NAMES)}")
        return names


class WorkerSettings(Group):
    app_id: str = "logweave"
    data_dir: Path = Path("var/worker")
    web_host: str = "0.0.0.0"
    web_port: int = Field(6066, ge=1, le=65535)
    standby_replicas: int = Field(0, ge=0)
    # RocksDB memory per table partition the worker holds (active or standby): block cache plus up to
    # two write buffers. faust's defaults (2 GiB cache, 3 x 64 MiB buffers, per partition) let a
    # worker's memory creep up for hours; these bound it.
    rocksdb_block_cache: ByteSize = 32 * 1024 * 1024
    rocksdb_write_buffer: ByteSize = 16 * 1024 * 1024
    # Stages this worker runs. A worker group with fewer stages needs its own app_id (consumer group):
    # e.g. dedicated drain workers scale apart from the stream workers.
    stages: list[Literal["parse", "group", "drain"]] = ["parse", "group", "drain"]


class Settings(BaseSettings):
    """The effective configuration of every Logweave process."""

    model_config = SettingsConfigDict(env_prefix="LOGWEAVE_", env_nested_delimiter="__", extra="forbid")

    kafka: KafkaSettings = KafkaSettings()
    collector: CollectorSettings = CollectorSettings()
    pods: PodCollectorSettings = PodCollectorSettings()
    parse: ParseSettings = ParseSettings()
    multiline: MultilineSettings = MultilineSettings()
    traces: TraceSettings = TraceSettings()
    routing: RoutingSettings = RoutingSettings()
    sinks: SinkSettings = SinkSettings()
    worker: WorkerSettings = WorkerSettings()

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


def _env_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return "LOGWEAVE_" + "__".join(p.upper() for p in parts)


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    dotted = ".".join(str(p) for p in loc)
    value = first.get("input")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown setting (check the spelling against `logweave check-config`)"
    elif first["type"] == "literal_error":
        message = "allowed values: " + message.removeprefix("Input should be ")
    more = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return f"invalid setting {dotted} ({_env_path(loc)}) = {value!r}: {message}{more}"


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
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of setting groups at the top level")
        from_file = loaded
    base = _merge(from_file, _seed_overrides(env))
    nested: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("LOGWEAVE_") or key == "LOGWEAVE_CONFIG":
            continue
        parts = key.removeprefix("LOGWEAVE_").lower().split("__")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"invalid setting {key}: {'.'.join(parts[:-1])} is not a group of settings")
            node = child
        node[parts[-1]] = value
    try:
        return Settings(**_merge(_merge(base, nested), overrides))
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
