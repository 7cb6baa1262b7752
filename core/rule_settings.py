"""Settings groups of the rules that can change while Logweave runs: text parsers, multiline joining and
routing transforms (docs/parsing.md, docs/multiline.md, docs/transforms.md, docs/rules.md).

Part of the one settings model (core/settings.py re-exports them); kept apart so that model's module
stays readable.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.durations import ByteSize, Duration
from core.models import LEVEL_RANK
from core.settings_group import Group


class MultilineRule(Group):
    """How the collectors join the lines of one record (a stack trace) before publishing (docs/multiline.md)."""

    name: str = ""
    detectors: list[Literal["java", "python", "go", "nodejs"]] = []
    start: str | None = None  # regex: a line matching it begins a record (others continue it)
    continuation: str | None = None  # regex: a line matching it continues the open record
    # where it applies (every given selector must match; none given: every source)
    paths: list[str] = []  # shell globs on the file path
    namespaces: list[str] = []
    containers: list[str] = []
    labels: dict[str, str] = {}
    flush_timeout: Duration = Field(1.0, gt=0)  # an open record is sent after this long without a new line
    max_lines: int = Field(500, ge=2)
    max_bytes: ByteSize = Field(256 * 1024, ge=1024)

    @field_validator("start", "continuation")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regex {pattern!r} is invalid: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _something_to_join_by(self) -> MultilineRule:
        if not (self.detectors or self.start or self.continuation):
            raise ValueError(f"multiline rule {self.name or '(unnamed)'!r} needs detectors, start or continuation")
        return self


class MultilineSettings(Group):
    rules: list[MultilineRule] = []  # the first rule matching a source applies to each of its streams


PARSER_TYPES = ("json", "logfmt", "regex", "grok")


class ParserDef(Group):
    """A named parser: `regex` patterns use named groups, `grok` patterns %{NAME:field} (docs/parsing.md)."""

    name: str = Field(min_length=1)
    type: Literal["json", "logfmt", "regex", "grok"]
    patterns: list[str] = []  # tried in order; the first that matches the whole line wins
    definitions: dict[str, str] = {}  # extra grok pattern names for this parser's patterns

    @model_validator(mode="after")
    def _patterns_given(self) -> ParserDef:
        if self.type in ("regex", "grok") and not self.patterns:
            raise ValueError(f"parser {self.name!r} of type {self.type} needs at least one entry in `patterns`")
        return self


class ParserSource(Group):
    """Which parsers, tried in order, read the lines of matching sources (first matching entry wins)."""

    parsers: list[str] = Field(min_length=1)
    namespaces: list[str] = []  # empty: any
    containers: list[str] = []
    paths: list[str] = []  # shell globs on the file path


class RedactRule(Group):
    """Replace what a pattern (or a built-in: email, bearer, card) matches in string values."""

    builtin: Literal["email", "bearer", "card"] | None = None
    pattern: str | None = None
    fields: list[str] = []  # top-level fields to look in; empty: every string value, nested too
    action: Literal["mask", "hash"] = "mask"

    @model_validator(mode="after")
    def _one_pattern(self) -> RedactRule:
        if (self.builtin is None) == (self.pattern is None):
            raise ValueError("a redact entry needs exactly one of `builtin` (email, bearer, card) or `pattern`")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"redact pattern {self.pattern!r} is invalid: {exc}") from None
        return self


class SampleRule(Group):
    """Keep `rate` of traces, chosen by a hash of the trace id (the same choice on every worker)."""

    rate: float = Field(ge=0.0, le=1.0)
    keep_errors: bool = True  # trace rules: a trace with an error line is always kept


class Transforms(Group):
    """What a routing rule changes in the lines it sends (docs/transforms.md), in this order."""

    drop_below: str | None = None  # drop lines under this level (lines without a level are kept)
    drop_matching: list[str] = []  # drop lines whose text matches one of these regexes
    sample: SampleRule | None = None
    add: dict[str, str] = {}  # field -> value; `${source.namespace}`, `${source.labels.app}` take metadata
    rename: dict[str, str] = {}
    drop: list[str] = []
    keep: list[str] = []  # if given, only these top-level fields stay
    redact: list[RedactRule] = []

    @field_validator("drop_matching")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"drop_matching {pattern!r} is invalid: {exc}") from None
        return patterns


class LineMatch(Group):
    """Which lines a rule takes: every predicate given must match (routing rules, log metric rules)."""

    level_at_least: str | None = None
    service: list[str] | None = None
    namespace: list[str] | None = None
    labels: dict[str, str] = {}  # the source's labels (pod labels)
    fields: dict[str, str] = {}  # top-level field -> exact value (compared as text)
    regex: dict[str, str] = {}  # top-level field -> regex searched in its value

    def problem(self) -> str | None:
        """The first predicate that cannot work (a regex that does not compile, an unknown level), or None."""
        for field, pattern in self.regex.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"regex for {field!r} is invalid: {exc}"
        if self.level_at_least and self.level_at_least.lower() not in LEVEL_RANK:
            return f"level_at_least {self.level_at_least!r} is not one of {', '.join(LEVEL_RANK)}"
        return None
