"""A line predicate (core/rule_settings.py LineMatch) compiled: routing rules and log metric rules
decide which lines they take by it.

The predicates on what the parsed line carries (level, service, the source's namespace and labels)
are checked first; the document is decoded only for `fields` and `regex`, and only for lines that
passed the others.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from core.models import LEVEL_RANK, P_LEVEL, P_SERVICE, P_SRC, P_TEXT
from core.rule_settings import LineMatch


class LineFilter:
    def __init__(self, match: LineMatch) -> None:
        self.min_rank = LEVEL_RANK.get(match.level_at_least.lower(), 0) if match.level_at_least else None
        self.services = frozenset(match.service) if match.service else None
        self.namespaces = frozenset(match.namespace) if match.namespace else None
        self.labels = dict(match.labels)
        self.fields = dict(match.fields)
        self.regex = {k: re.compile(v) for k, v in match.regex.items()}
        self.needs_document = bool(self.fields or self.regex)
        self.everything = self.min_rank is None and self.services is None and self.namespaces is None \
            and not self.labels and not self.needs_document

    def matches(self, line: list[Any], sources: list[dict[str, Any]]) -> bool:
        return self.line_matches(line, sources) and (
            not self.needs_document or self.document_matches(orjson.loads(line[P_TEXT])))

    def line_matches(self, line: list[Any], sources: list[dict[str, Any]]) -> bool:
        """The predicates on what the parsed line carries."""
        if self.min_rank is not None and LEVEL_RANK.get(line[P_LEVEL], -1) < self.min_rank:
            return False
        if self.services is not None and line[P_SERVICE] not in self.services:
            return False
        if self.namespaces is not None or self.labels:
            src = sources[line[P_SRC]]
            if self.namespaces is not None and src.get("namespace") not in self.namespaces:
                return False
            labels = src.get("labels") or {}
            if any(labels.get(k) != v for k, v in self.labels.items()):
                return False
        return True

    def document_matches(self, doc: dict[str, Any]) -> bool:
        """The predicates on the line's fields (`doc`, its decoded text)."""
        if any(str(doc.get(k)) != v for k, v in self.fields.items()):
            return False
        return not any(k not in doc or not pattern.search(str(doc[k])) for k, pattern in self.regex.items())
