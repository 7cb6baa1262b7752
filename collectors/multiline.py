"""Joins the physical lines of one record (a stack trace, a panic) into one raw line, per stream.

Why in the collector: only there is each stream's line order known (stdout and stderr of a file
interleave; partial CRI/docker lines are merged first). Every stream has at most one open record;
a line continues it if a built-in detector (collectors/multiline_detectors.py) or the rule's
`continuation` pattern says so, or if the rule has a `start` pattern the line does not match.
A record closes when a line starts the next one, when it would pass `max_lines` / `max_bytes`, or
`flush_timeout` after its last line.

Positions and checkpoints: a record takes the position of its first line, and closed records leave
in position order (a closed record waits while an earlier record of the other stream is still
open), so positions still strictly increase within the stream. `min_resume` - where the earliest
record not yet sent began - bounds the collector's checkpoint, so a checkpoint never falls inside
a joined record: after a crash the record is read again whole and keeps its position (dedupe holds).
A record cut by `flush_timeout` is the exception: read again at full speed it may join further.
"""

from __future__ import annotations

import fnmatch
import heapq
import re
from dataclasses import dataclass, field
from typing import Any

from collectors.multiline_detectors import Block, continues
from core.models import FLAG_BASE64, FLAG_TRUNCATED, RawLine
from core.rule_settings import MultilineRule

Emitted = tuple[RawLine, int]  # a raw line and the offset to resume from to read it again


class CompiledRule:
    """A MultilineRule with its patterns compiled."""

    def __init__(self, rule: MultilineRule) -> None:
        self.rule = rule
        self.detectors = frozenset(rule.detectors)
        self.start = re.compile(rule.start) if rule.start else None
        self.continuation = re.compile(rule.continuation) if rule.continuation else None
        self.timeout, self.max_lines, self.max_bytes = rule.flush_timeout, rule.max_lines, rule.max_bytes
        self.stateful = bool(self.detectors & {"python", "go", "nodejs"})
        self.stateless_block = Block()  # java keeps no state: one shared block

    def applies_to(self, source: dict[str, Any]) -> bool:
        rule = self.rule
        if rule.namespaces and source.get("namespace") not in rule.namespaces:
            return False
        if rule.containers and source.get("container") not in rule.containers:
            return False
        labels = source.get("labels") or {}
        if any(labels.get(k) != v for k, v in rule.labels.items()):
            return False
        path = source.get("path")
        return not rule.paths or (isinstance(path, str) and any(fnmatch.fnmatchcase(path, g) for g in rule.paths))

    def new_block(self, first: str) -> Block:
        if not self.stateful:
            return self.stateless_block
        block = Block()
        block.note_first(first, self.detectors)
        return block

    def joins(self, text: str, block: Block) -> bool:
        if self.detectors and continues(text, block, self.detectors):
            return True
        if self.continuation is not None and self.continuation.match(text):
            return True
        return self.start is not None and self.start.match(text) is None


def rule_for(rules: list[MultilineRule], source: dict[str, Any]) -> CompiledRule | None:
    """The first rule that applies to `source`, compiled, or None."""
    for rule in rules:
        compiled = CompiledRule(rule)
        if compiled.applies_to(source):
            return compiled
    return None


@dataclass(slots=True)
class _Record:
    pos: int
    resume: int
    stream: str
    source_ns: int
    flags: int
    last_seen: float
    texts: list[str] = field(default_factory=list)
    size: int = 0
    block: Block | None = None  # only for detectors that track state (python, go, nodejs)

    def raw(self) -> RawLine:
        return [self.pos, "\n".join(self.texts), self.stream, self.source_ns, self.flags]


class MultilineJoiner:
    """The open and closed-but-held records of one source's streams."""

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.open: dict[str, _Record] = {}
        self._closed: list[tuple[int, int, RawLine]] = []  # heap of (position, resume, raw line)
        self.joined_lines = 0  # lines appended to a record they did not start (for metrics)

    def push(self, raw: RawLine, resume: int, now: float) -> list[Emitted]:
        """Take the next line of its stream; return the records now ready to send, in position order."""
        return self.push_many([raw], {raw[0]: resume} if resume != raw[0] else {}, now)

    def push_many(self, lines: list[RawLine], resumes: dict[int, int], now: float) -> list[Emitted]:
        """`push` for many lines in their order (`resumes`: position -> resume offset where they differ).

        One loop with the per-line work inlined: this runs for every line a collector reads.
        """
        rule, opened, closed = self.rule, self.open, self._closed
        out: list[Emitted] = []
        max_lines, max_bytes, joins, stateless = rule.max_lines, rule.max_bytes, rule.joins, rule.stateless_block
        stateful, new_block, heappush = rule.stateful, rule.new_block, heapq.heappush
        joined = 0
        for raw in lines:
            pos: int = raw[0]
            text: str = raw[1]
            stream: str = raw[2]
            record = opened.get(stream)
            if record is not None:
                if not raw[4] & FLAG_BASE64 and len(record.texts) < max_lines \
                        and record.size + len(text) < max_bytes and joins(text, record.block or stateless):
                    record.texts.append(text)
                    record.size += len(text) + 1
                    record.flags |= raw[4] & FLAG_TRUNCATED
                    record.last_seen = now
                    joined += 1
                    continue
                del opened[stream]
                texts = record.texts
                done = [record.pos, texts[0] if len(texts) == 1 else "\n".join(texts), stream, record.source_ns,
                        record.flags]
                if not closed and not opened:  # nothing before it is held: out at once (the common case)
                    out.append((done, record.resume))
                else:
                    heappush(closed, (record.pos, record.resume, done))
            resume: int = resumes.get(pos, pos)
            if raw[4] & FLAG_BASE64:  # not text: it cannot be joined
                heappush(closed, (pos, resume, raw))
            else:
                opened[stream] = _Record(pos, resume, stream, raw[3], raw[4], now, [text], len(text),
                                         new_block(text) if stateful else None)
            if closed:
                limit = next(iter(opened.values())).pos if len(opened) == 1 else \
                    min((r.pos for r in opened.values()), default=None)
                while closed and (limit is None or closed[0][0] < limit):
                    item = heapq.heappop(closed)
                    out.append((item[2], item[1]))
        self.joined_lines += joined
        return out

    def flush_due(self, now: float) -> list[Emitted]:
        """Close records idle for `flush_timeout`; return what is ready."""
        for record in [r for r in self.open.values() if now - r.last_seen >= self.rule.timeout]:
            self._close(record)
        return self._release()

    def flush_all(self) -> list[Emitted]:
        for record in list(self.open.values()):
            self._close(record)
        return self._release()

    @property
    def min_resume(self) -> int | None:
        """Where the earliest record not yet returned began (None: nothing held)."""
        starts = [r.resume for r in self.open.values()] + [resume for _, resume, _ in self._closed]
        return min(starts) if starts else None

    @property
    def holding(self) -> bool:
        return bool(self.open or self._closed)

    def _close(self, record: _Record) -> None:
        del self.open[record.stream]
        heapq.heappush(self._closed, (record.pos, record.resume, record.raw()))

    def _release(self) -> list[Emitted]:
        if not self._closed:
            return []
        opened = self.open
        limit = None if not opened else next(iter(opened.values())).pos if len(opened) == 1 else \
            min(r.pos for r in opened.values())
        out: list[Emitted] = []
        while self._closed and (limit is None or self._closed[0][0] < limit):
            _, resume, raw = heapq.heappop(self._closed)
            out.append((raw, resume))
        return out
