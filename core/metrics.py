"""Every Prometheus metric of the worker in one place, with one label set each.

Stages, agents, sinks and web views emit through these objects only, so a dashboard can rely
on consistent names. Collectors run in their own processes and define theirs beside their code.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from core.log_metric_series import LogMetricsCollector

LINES = Counter("logweave_lines_total", "Lines seen per pipeline stage", ["stage"])
CHUNKS = Counter("logweave_chunks_total", "Chunk records consumed per stage", ["stage"])
GROUP_FOLDED = Counter("logweave_group_records_folded_total", "logs.parsed records the group stage applied from "
                       "their trace folds read in C, forwarded as received, without decoding their lines")
FLUSHES = Counter("logweave_stage_flushes_total", "Batches of input records a stage applied and sent at once "
                  "(records per flush: logweave_chunks_total / this)", ["stage"])
DEAD_LETTERS = Counter("logweave_dead_letters_total", "Lines dead-lettered, by stage and reason",
                       ["stage", "reason"])
DUPLICATES = Counter("logweave_duplicate_lines_total", "Lines skipped as already applied (replays)", ["stage"])
HELD_LINES = Gauge("logweave_held_lines", "Lines held for whole-trace rules until their trace closes")
HELD_OVERFLOW = Counter("logweave_held_overflow_total", "Lines not held because a hold bound was reached",
                        ["bound", "policy"])
TABLE_PERSISTS = Counter("logweave_table_persists_total",
                         "Trace table persists: one RocksDB write batch and one changelog record each")
TABLE_KEYS_PERSISTED = Counter("logweave_table_keys_persisted_total", "Trace table keys written or deleted by persists")
OPEN_TRACES = Gauge("logweave_open_traces", "Traces open in this worker's trace table")
TRACES_CLOSED = Counter("logweave_traces_closed_total", "Traces closed, by cause", ["cause"])
SINK_LINES = Counter("logweave_sink_lines_written_total", "Lines confirmed written by a sink", ["sink"])
SINK_BATCHES = Counter("logweave_sink_batches_total", "Batches confirmed written by a sink", ["sink"])
SINK_BYTES = Counter("logweave_sink_bytes_total", "Document bytes confirmed written by a sink", ["sink"])
SINK_RETRIES = Counter("logweave_sink_retries_total", "Write attempts retried", ["sink"])
SINK_DEAD_LETTERS = Counter("logweave_sink_dead_letters_total", "Lines a sink rejected permanently", ["sink"])
SINK_LATENCY = Histogram("logweave_sink_write_seconds", "Duration of one confirmed batch write", ["sink"],
                         buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SINK_BREAKER = Gauge("logweave_sink_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["sink"])
SINK_STATE = Gauge("logweave_sink_state", "Sink state: 0 starting, 1 ready, 2 failing, 3 breaker open", ["sink"])
SINK_OLDEST_UNWRITTEN = Gauge("logweave_sink_oldest_unwritten_seconds",
                              "Age of the oldest sink-topic record handed to the sink and not confirmed written",
                              ["sink"])
CONSUMER_LAG = Gauge("logweave_consumer_lag", "Records between the committed offset (the topic's start when none) and "
                     "the end offset", ["topic", "partition"])
API_REQUESTS = Counter("logweave_api_requests_total", "Query API requests, by route and status", ["route", "status"])
API_LATENCY = Histogram("logweave_api_request_seconds", "Query API request duration (tail: until it ends)", ["route"],
                        buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10))
API_TAILS = Gauge("logweave_api_tails", "Live tails open")
TRANSFORM_LINES = Counter("logweave_transform_lines_total",
                          "Lines through a routing rule's transforms: kept, dropped, sampled_out, redacted",
                          ["rule", "outcome"])
RULES_VERSION = Gauge("logweave_rules_version_info", "The live rules version this worker runs (value 1)",
                      ["version"])
RULES_LATE = Counter("logweave_rules_late_total",
                     "Rules versions read after chunks collected past their effective point were handled")
RULES_REFUSED = Counter("logweave_rules_refused_total", "Published rules versions this worker refused")
# metrics from logs (docs/metrics-from-logs.md): the rules name them, all under `logweave_log_`, with
# logweave_log_metric_folded_total{metric} and logweave_log_metric_skipped_total{metric,reason} beside them
LOG_METRICS = LogMetricsCollector()
REGISTRY.register(LOG_METRICS)
