"""Rules that can change while workers and collectors run: parsers, routing (with its transforms), metrics
from logs and the collectors' multiline rules, as one document.

They live in a file (a ConfigMap); `logweave rules watch FILE` validates each new version and publishes
it to the compacted `config.rules` topic, from which every worker takes it (agents/live_rules.py).
A version is named by the file's `version` or else by a hash of its content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import ValidationError

from core.errors import ConfigError
from core.log_metric_settings import LogMetricSettings
from core.rule_settings import MultilineSettings, ParserDef, ParserSource
from core.settings import ParseSettings, RoutingSettings, Settings
from core.settings_group import Group

RULES_SCHEMA = 1


class ParseRules(Group):
    parsers: list[ParserDef] = []
    sources: list[ParserSource] = []
    unmatched: Literal["message", "deadletter"] = "message"


class RulesDocument(Group):
    version: str = ""
    parse: ParseRules = ParseRules()
    routing: RoutingSettings = RoutingSettings()
    log_metrics: LogMetricSettings = LogMetricSettings()  # docs/metrics-from-logs.md
    multiline: MultilineSettings | None = None  # the collectors' rules; absent: each keeps its own settings

    def name(self) -> str:
        """The version's name: the one given, else the first 12 hex digits of the content's hash."""
        if self.version:
            return self.version
        # without metric rules, the same name as before they existed
        exclude = {"version"} | ({"log_metrics"} if self.log_metrics == LogMetricSettings() else set())
        content = orjson.dumps(self.model_dump(mode="json", exclude=exclude), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(content).hexdigest()[:12]

    def merged(self, settings: Settings) -> Settings:
        """`settings` with these rules in place of its parse rules, routing and metric rules (validated again)."""
        try:
            parse = ParseSettings(**{**settings.parse.model_dump(), **self.parse.model_dump()})
        except ValidationError as exc:
            raise ConfigError(f"parse.{_first_error(exc)}") from None
        return settings.model_copy(update={"parse": parse, "routing": self.routing, "log_metrics": self.log_metrics})

    def encode(self, effective_from_ns: int | None = None) -> bytes:
        """The rules record; `effective_from_ns` (ns since the epoch) is the collection time from which every
        worker applies it (agents/live_rules.py); without it, each worker applies it when it reads it."""
        record: dict[str, Any] = {"v": RULES_SCHEMA, "version": self.name(), "rules": self.model_dump(mode="json")}
        if effective_from_ns is not None:
            record["effective_from_ns"] = effective_from_ns
        return orjson.dumps(record)


def decode_rules(value: bytes) -> RulesDocument:
    """A published rules record; ConfigError naming what is wrong."""
    return decode_record(value)[0]


def decode_record(value: bytes) -> tuple[RulesDocument, int | None]:
    """A published rules record and its effective point (None: from when it is read); ConfigError naming
    what is wrong."""
    try:
        data = orjson.loads(value)
        if not isinstance(data, dict) or data.get("v") != RULES_SCHEMA:
            raise ConfigError(f"rules record of schema {data.get('v') if isinstance(data, dict) else None!r}; "
                              f"this release reads {RULES_SCHEMA}")
        effective = data.get("effective_from_ns")
        if effective is not None and (type(effective) is not int or effective < 0):
            raise ConfigError(f"rules record's effective_from_ns {effective!r} is not a time in ns since the epoch")
        return RulesDocument(**data["rules"]), effective
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"rules record is not readable: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"rules record is invalid: {_first_error(exc)}") from None


def load_rules_file(path: Path) -> RulesDocument:
    """The rules in a YAML file; ConfigError with the file and the first problem."""
    try:
        data: Any = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"rules file {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"rules file {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"rules file {path}: expected a mapping with `parse`, `routing`, `log_metrics` "
                          f"and/or `multiline`")
    try:
        return RulesDocument(**data)
    except ValidationError as exc:
        raise ConfigError(f"rules file {path}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
