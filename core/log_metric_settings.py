"""Settings of metrics from logs: rules that turn parsed lines into Prometheus counters and histograms
(docs/metrics-from-logs.md).

Part of the one settings model (`log_metrics`) and of the live rules document (core/rules.py). Every
check a worker could fail on is made here, so a bad rule is refused before it is published, with one
line naming the setting and what is allowed: names cannot collide with Logweave's own metrics (they
must start with `logweave_log_`), label names must be valid and not ones Prometheus sets itself, and
histogram buckets must be finite and strictly increasing.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.rule_settings import LineMatch
from core.settings_group import Group

NAME_PREFIX = "logweave_log_"
RESERVED_PREFIX = "logweave_log_metric_"  # Logweave's own figures about these metrics (folded, skipped)
_METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# labels Prometheus sets itself (target labels, histogram bucket bounds): a rule's label of that name
# would be renamed `exported_...` on scrape or break the histogram
RESERVED_LABELS = frozenset({"le", "quantile", "instance", "job"})
LINE_VALUES = ("level", "service", "stream")  # label values the parsed line carries
SOURCE_SHORTHANDS = ("namespace", "pod", "container", "node", "path", "kind")  # label value: source.<name>
HISTOGRAM_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")
MAX_BUCKETS = 50
DEFAULT_MAX_SERIES = 100


def label_source_problem(source: str) -> str | None:
    """Why `source` cannot give a label value, or None: `level`, `service`, `stream`, `source.<key>[.<key>]`
    (the source's metadata: `source.namespace`, `source.labels.app`) or `field.<name>` (a top-level field)."""
    if source in LINE_VALUES:
        return None
    kind, _, rest = source.partition(".")
    if kind in ("source", "field") and rest and all(rest.split(".")):
        return None if kind == "source" or "." not in rest else f"field.{rest}: only top-level fields"
    return (f"label source {source!r} is not one of {', '.join(LINE_VALUES)}, source.<key> (e.g. "
            f"source.namespace, source.labels.app) or field.<name>")


def _label_map(value: Any) -> Any:
    """`labels: [service, namespace, field.route]` is short for `{service: service, namespace:
    source.namespace, route: field.route}`."""
    if isinstance(value, str):  # `LOGWEAVE_..._LABELS=service,namespace`
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list):
        return value
    out: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, str):
            return value  # let the type check name it
        if item in SOURCE_SHORTHANDS:
            out[item] = f"source.{item}"
        else:
            out[item.rsplit(".", 1)[-1]] = item
    return out


class LogMetricRule(Group):
    """One metric: a counter of matching lines, or a histogram of a numeric field of matching lines, by
    the labels given. `match` takes the predicates of routing rules (level_at_least, service, namespace,
    labels, fields, regex); none: every line."""

    name: str
    type: Literal["counter", "histogram"]
    help: str = ""
    match: LineMatch = LineMatch()
    labels: dict[str, str] = {}  # label name -> where its value comes from (label_source_problem)
    field: str | None = None  # histogram: the top-level numeric field observed
    buckets: list[float] = []  # histogram: upper bounds, strictly increasing (+Inf is implicit)
    max_series: int | None = Field(None, ge=1, le=10_000)  # None: log_metrics.max_series

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _METRIC_NAME.match(name) or not name.startswith(NAME_PREFIX) or name.startswith(RESERVED_PREFIX):
            raise ValueError(f"metric name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]* and start with "
                             f"{NAME_PREFIX!r} (not {RESERVED_PREFIX!r}, which Logweave uses itself)")
        return name

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        labels = _label_map(value)
        if isinstance(labels, dict):
            for label, source in labels.items():
                if not isinstance(label, str) or not _LABEL_NAME.match(label) or label.startswith("__") \
                        or label in RESERVED_LABELS:
                    raise ValueError(f"label name {label!r} must match [a-zA-Z_][a-zA-Z0-9_]*, not start with "
                                     f"'__' and not be one of {', '.join(sorted(RESERVED_LABELS))}")
                problem = label_source_problem(source) if isinstance(source, str) else None
                if problem is not None:
                    raise ValueError(f"label {label!r}: {problem}")
        return labels

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, buckets: list[float]) -> list[float]:
        if len(buckets) > MAX_BUCKETS or not all(math.isfinite(b) for b in buckets) \
                or any(b >= after for b, after in itertools.pairwise(buckets)):
            raise ValueError(f"buckets {buckets} must be at most {MAX_BUCKETS} finite upper bounds in strictly "
                             f"increasing order (+Inf is implicit)")
        return buckets

    @model_validator(mode="after")
    def _shape(self) -> LogMetricRule:
        name = self.name
        if self.type == "counter":
            if not name.endswith("_total"):
                raise ValueError(f"counter {name!r}: a counter's name must end with '_total'")
            if self.field is not None or self.buckets:
                raise ValueError(f"counter {name!r}: `field` and `buckets` are for histograms (a counter counts lines)")
        else:
            if name.endswith(HISTOGRAM_SUFFIXES):
                raise ValueError(f"histogram {name!r}: the name must not end with {', '.join(HISTOGRAM_SUFFIXES)}")
            if not self.field:
                raise ValueError(f"histogram {name!r} needs `field`: the top-level numeric field to observe")
            if not self.buckets:
                raise ValueError(f"histogram {name!r} needs `buckets`: upper bounds in increasing order, "
                                 f"e.g. [10, 50, 100, 500, 1000]")
        problem = self.match.problem()
        if problem is not None:
            raise ValueError(f"metric {name!r}: match.{problem}")
        return self

    def family(self) -> str:
        """The metric family's name (a counter's without `_total`): what must be unique in a scrape."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


class LogMetricSettings(Group):
    """`log_metrics`: the rules, and the bound on series (label value combinations) per metric and worker."""

    max_series: int = Field(DEFAULT_MAX_SERIES, ge=1, le=10_000)
    rules: list[LogMetricRule] = []

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[LogMetricRule]) -> list[LogMetricRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.family() in seen:
                raise ValueError(f"metric {rule.name!r}: another rule already names metric family {rule.family()!r}")
            seen.add(rule.family())
        return rules
