"""Transforms of routing rules: what a rule changes in, or drops from, the lines it sends to its sinks.

Why here, after grouping: the trace table, closing and summaries see every line as parsed; only
what leaves for a sink is shaped (Fluent Bit's record_modifier / grep / modify filters, which the
rules replace). Order: drop by level or pattern, sample, add, rename, drop, keep, redact.

Sampling keeps a fraction of traces chosen by a hash of the trace id, so every worker, and every
line of a trace, gets the same answer: a trace is kept or dropped whole. Trace rules decide when
the trace closes, so a trace with an error line can always be kept (`keep_errors`); line rules
decide per line and sample by the hash alone. Untraced lines are never sampled out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from hashlib import blake2b
from typing import Any

import orjson

from core.metrics import TRANSFORM_LINES
from core.models import LEVEL_RANK, P_LEVEL, P_SRC, P_TEXT, P_TRACE
from core.rule_settings import RedactRule, Transforms

MASK = "****"
_TEMPLATE = re.compile(r"\$\{source\.([\w.-]+)\}")
_BUILTIN: dict[str, tuple[str, str | None]] = {  # pattern, group holding the secret (None: the whole match)
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", None),
    "bearer": (r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]+=*)", "secret"),
    "card": (r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])", None),
}
_SCALE = float(1 << 64)


def trace_kept(trace_id: str, rate: float) -> bool:
    """Whether sampling at `rate` keeps `trace_id`: the same answer for every line and every worker."""
    if rate >= 1.0:
        return True
    digest = blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < rate


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return 13 <= len(digits) <= 19 and total % 10 == 0


class _Redactor:
    def __init__(self, rule: RedactRule) -> None:
        pattern, self.group = _BUILTIN[rule.builtin] if rule.builtin else (rule.pattern or "", None)
        self.regex = re.compile(pattern)
        self.check: Callable[[str], bool] | None = _luhn if rule.builtin == "card" else None
        self.fields = rule.fields
        self.hash = rule.action == "hash"

    def _replace(self, match: re.Match[str]) -> str:
        secret = match.group(self.group) if self.group else match.group(0)
        if self.check is not None and not self.check(secret):
            return match.group(0)
        new = f"hash:{blake2b(secret.encode(), digest_size=8).hexdigest()}" if self.hash else MASK
        if self.group is None:
            return new
        start, end = match.start(self.group) - match.start(0), match.end(self.group) - match.start(0)
        whole = match.group(0)
        return whole[:start] + new + whole[end:]

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.regex.sub(self._replace, value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def document(self, doc: dict[str, Any]) -> None:
        for key in self.fields or list(doc):
            if key in doc:
                doc[key] = self.value(doc[key])


def _source_value(source: dict[str, Any], path: str) -> Any:
    node: Any = source
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


class Transformer:
    """One routing rule's transforms, compiled, with its counters."""

    def __init__(self, rule_name: str, spec: Transforms) -> None:
        self.rule = rule_name
        self.min_rank = LEVEL_RANK.get(spec.drop_below.lower()) if spec.drop_below else None
        self.drop_matching = [re.compile(p) for p in spec.drop_matching]
        self.sample = spec.sample
        self.add, self.rename, self.drop, self.keep = dict(spec.add), dict(spec.rename), list(spec.drop), spec.keep
        self.redactors = [_Redactor(r) for r in spec.redact]
        self.edits = bool(self.add or self.rename or self.drop or self.keep or self.redactors)
        self.counts = {"kept": 0, "dropped": 0, "sampled_out": 0, "redacted": 0}
        self._metric = {name: TRANSFORM_LINES.labels(rule_name, name) for name in self.counts}

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self._metric[outcome].inc()

    def apply(self, line: list[Any], sources: list[dict[str, Any]], trace_errors: bool | None) -> list[Any] | None:
        """The line as this rule sends it, or None if the rule drops it.

        `trace_errors`: whether the line's trace had an error line (trace rules, at close), or None
        (line rules: not known yet).
        """
        if self.min_rank is not None and 0 <= LEVEL_RANK.get(line[P_LEVEL], -1) < self.min_rank:
            self._count("dropped")
            return None
        if self.drop_matching and any(p.search(line[P_TEXT]) for p in self.drop_matching):
            self._count("dropped")
            return None
        sample = self.sample
        if sample is not None and line[P_TRACE] and not (sample.keep_errors and trace_errors) \
                and not trace_kept(line[P_TRACE], sample.rate):
            self._count("sampled_out")
            return None
        self._count("kept")
        if not self.edits:
            return line
        doc = orjson.loads(line[P_TEXT])
        if not isinstance(doc, dict):
            return line
        source = sources[line[P_SRC]] if 0 <= line[P_SRC] < len(sources) else {}
        for field, template in self.add.items():
            whole = _TEMPLATE.fullmatch(template)
            doc[field] = _source_value(source, whole.group(1)) if whole else _TEMPLATE.sub(
                lambda m: str(_source_value(source, m.group(1)) or ""), template)
        for old, new in self.rename.items():
            if old in doc:
                doc[new] = doc.pop(old)
        for field in self.drop:
            doc.pop(field, None)
        if self.keep:
            doc = {k: v for k, v in doc.items() if k in self.keep}
        if self.redactors:
            before = orjson.dumps(doc)
            for redactor in self.redactors:
                redactor.document(doc)
            text = orjson.dumps(doc)
            if text != before:
                self._count("redacted")
        else:
            text = orjson.dumps(doc)
        entry = list(line)
        entry[P_TEXT] = text.decode()
        return entry


def transformer_for(rule_name: str, spec: Transforms) -> Transformer | None:
    """The rule's transformer, or None when it has no transforms (its lines go out untouched)."""
    if spec == Transforms():
        return None
    return Transformer(rule_name, spec)
