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

Speed: every line a collector reads goes through `push_into`. For a rule without state (the `java`
detector, `start` and `continuation` patterns) and a batch of one stream, whether each line could
continue a record is found for the whole batch in C (`map` of the compiled patterns into one byte per
line), the runs of continuation lines by one regex over those bytes, and the lines between runs -
records of one line - are passed on as slices: Python runs once per run, not once per line. Other
batches take the general per-line loop; both decide the same way (a differential
test in tests/unit/collectors/test_multiline_batch.py checks it).
"""

from __future__ import annotations

import fnmatch
import heapq
import re
from collections.abc import Callable, Iterable, Iterator
from functools import reduce
from operator import itemgetter, not_, or_, truth
from typing import Any

from collectors.multiline_detectors import JAVA_CONTINUATION, Block, continues
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
        self.quick = self._quick()
        self.batch_marks = self._batch_marks()

    def _quick(self) -> Callable[[str], object] | None:
        """For a rule with one stateless test (java alone, a continuation or a start pattern alone): that
        test as one C call, truthy when the line continues the record. Every line a collector reads takes
        it, and a line that obviously starts a record (`{...`, `2025-06-10 INFO ...`) fails at its first
        character without a Python call."""
        if self.stateful or sum((bool(self.detectors), self.continuation is not None, self.start is not None)) != 1:
            return None
        if self.detectors:
            return JAVA_CONTINUATION.match
        if self.continuation is not None:
            return self.continuation.match
        start = self.start
        assert start is not None
        return lambda text: start.match(text) is None

    def _batch_marks(self) -> Callable[[list[RawLine]], bytes] | None:
        """For a rule without state (every rule but the python, go and nodejs detectors): one byte per
        line, 1 where its text continues an open record (`joins` true), made with C loops only."""
        if self.stateful:
            return None
        tests = [_matching(match) for match in (JAVA_CONTINUATION.match if self.detectors else None,
                                                self.continuation.match if self.continuation is not None else None)
                 if match is not None]
        if self.start is not None:
            start = self.start.match
            tests.append(lambda texts: map(not_, map(start, texts)))
        if len(tests) == 1:
            only = tests[0]
            return lambda lines: bytes(only(map(_TEXT, lines)))

        def marks(lines: list[RawLine]) -> bytes:
            texts = list(map(_TEXT, lines))
            return bytes(map(any, zip(*(test(texts) for test in tests), strict=True)))
        return marks

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


def _matching(match: Callable[[str], object]) -> Callable[[Iterable[str]], Iterator[bool]]:
    return lambda texts: map(truth, map(match, texts))


def rule_for(rules: list[MultilineRule], source: dict[str, Any]) -> CompiledRule | None:
    """The first rule that applies to `source`, compiled, or None."""
    for rule in rules:
        compiled = CompiledRule(rule)
        if compiled.applies_to(source):
            return compiled
    return None


# An open record, as a list (one is made for every line read, so no class instance):
# [first raw line, resume offset, last seen (monotonic s), texts (None while it is one line), size, flags,
#  detector block (stateful detectors only)]
_RAW, _RESUME, _SEEN, _TEXTS, _SIZE, _FLAGS, _BLOCK = range(7)


def _closed_raw(record: list[Any]) -> RawLine:
    """The raw line of a closed record: its first line itself while nothing joined it."""
    first: RawLine = record[_RAW]
    if record[_TEXTS] is None and record[_FLAGS] == first[4]:
        return first
    return _joined_raw(first, record[_TEXTS], record[_FLAGS])


_TEXT, _STREAM, _LINE_FLAGS = itemgetter(1), itemgetter(2), itemgetter(4)
_RUNS = re.compile(b"\x01+").finditer  # runs of continuation lines in a batch's marks


def _joined_raw(first: RawLine, texts: list[str] | None, flags: int) -> RawLine:
    """The raw line of a closed record with lines joined to `first` (or only flags changed)."""
    return [first[0], first[1] if texts is None else "\n".join(texts), first[2], first[3], flags]


def _with_resumes(out: list[RawLine], resumes: dict[int, int]) -> list[Emitted]:
    emitted: list[Emitted] = []
    for raw in out:
        pos: int = raw[0]
        emitted.append((raw, resumes.get(pos, pos)))
    return emitted


class MultilineJoiner:
    """The open and closed-but-held records of one source's streams."""

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.open: dict[str, list[Any]] = {}  # stream -> its open record (_RAW, _RESUME, ...)
        self._closed: list[tuple[int, int, RawLine]] = []  # heap of (position, resume, raw line)
        self.joined_lines = 0  # lines appended to a record they did not start (for metrics)

    def push(self, raw: RawLine, resume: int, now: float) -> list[Emitted]:
        """Take the next line of its stream; return the records now ready to send, in position order."""
        return self.push_many([raw], {raw[0]: resume} if resume != raw[0] else {}, now)

    def push_many(self, lines: list[RawLine], resumes: dict[int, int], now: float) -> list[Emitted]:
        """`push` for many lines in their order (`resumes`: position -> resume offset where they differ)."""
        out: list[RawLine] = []
        out_resumes: dict[int, int] = {}
        self.push_into(lines, resumes, now, out, out_resumes)
        return _with_resumes(out, out_resumes)

    def push_into(self, lines: list[RawLine], resumes: dict[int, int], now: float, out: list[RawLine],
                  out_resumes: dict[int, int]) -> None:
        """`push_many` appending the ready records to `out`, and their resume offsets, where they differ
        from their positions, to `out_resumes`.

        A batch of one stream under a rule without state takes `_push_batch`; others one loop with the
        per-line work inlined, where a line that starts a record costs a dict lookup, the rule's test and
        a 7-item list.
        """
        if self.rule.batch_marks is not None and not resumes and not self._closed and lines \
                and self._push_batch(lines, now, out, out_resumes):
            return
        rule, opened, closed = self.rule, self.open, self._closed
        max_lines, max_bytes, joins, stateless, quick = (rule.max_lines, rule.max_bytes, rule.joins,
                                                         rule.stateless_block, rule.quick)
        stateful, new_block, heappush, append = rule.stateful, rule.new_block, heapq.heappush, out.append
        joined = 0
        for raw in lines:
            stream: str = raw[2]
            record = opened.get(stream)
            if record is not None:
                text: str = raw[1]
                texts = record[_TEXTS]
                if not raw[4] & FLAG_BASE64 and (texts is None or len(texts) < max_lines) \
                        and record[_SIZE] + len(text) < max_bytes \
                        and (quick(text) if quick is not None else joins(text, record[_BLOCK] or stateless)):
                    if texts is None:
                        record[_TEXTS] = [record[_RAW][1], text]
                    else:
                        texts.append(text)
                    record[_SIZE] += len(text) + 1
                    record[_FLAGS] |= raw[4] & FLAG_TRUNCATED
                    record[_SEEN] = now
                    joined += 1
                    continue
                del opened[stream]
                done = record[_RAW] if texts is None and record[_FLAGS] == record[_RAW][4] else _closed_raw(record)
                if not closed and not opened:  # nothing before it is held: out at once (the common case)
                    append(done)
                    if record[_RESUME] != done[0]:
                        out_resumes[done[0]] = record[_RESUME]
                else:
                    heappush(closed, (done[0], record[_RESUME], done))
            pos: int = raw[0]
            resume: int = resumes.get(pos, pos) if resumes else pos
            if raw[4] & FLAG_BASE64:  # not text: it cannot be joined
                heappush(closed, (pos, resume, raw))
            else:
                opened[stream] = [raw, resume, now, None, len(raw[1]), raw[4],
                                  new_block(raw[1]) if stateful else None]
            if closed:
                self._release_into(out, out_resumes)
        self.joined_lines += joined

    def _push_batch(self, lines: list[RawLine], now: float, out: list[RawLine], out_resumes: dict[int, int]) -> bool:
        """`push_into` for lines of one stream, none undecodable, under a rule without state, nothing closed
        and held, and no resume offsets (the general loop's decisions, made for the whole batch at once):
        False, and nothing done, for other batches.

        Python runs once per run of continuation lines (found by one regex over the batch's marks): the
        line before a run starts a record and the run joins it whole while it fits; the lines between
        runs are records of one line, passed on as they are."""
        streams = set(map(_STREAM, lines))
        if len(streams) != 1:
            return False
        stream = streams.pop()
        opened = self.open
        flag_values = set(map(_LINE_FLAGS, lines))
        if len(opened) > (stream in opened) or any(flags & FLAG_BASE64 for flags in flag_values):
            return False
        truncated = any(flags & FLAG_TRUNCATED for flags in flag_values)
        rule = self.rule
        assert rule.batch_marks is not None
        max_lines, max_bytes, append = rule.max_lines, rule.max_bytes, out.append
        # the open record in locals (a list only while it is left open): first line, resume offset, texts
        # (None while it is one line), size, flags
        first: RawLine | None = None
        resume = size = flags = 0
        texts: list[str] | None = None
        record = opened.pop(stream, None)
        if record is not None:
            first, resume, texts, size, flags = (record[_RAW], record[_RESUME], record[_TEXTS], record[_SIZE],
                                                 record[_FLAGS])
        joined = done_to = 0  # lines[:done_to] are taken (joined, passed on, or the open record's first)
        for run in _RUNS(rule.batch_marks(lines)):
            begin, end = run.span()  # lines[begin:end] continue the record open before them
            if begin > done_to:  # lines[done_to:begin] start records; the last of them is open when the run comes
                if first is not None:
                    if texts is None and flags == first[4]:
                        append(first)
                    else:
                        append(_joined_raw(first, texts, flags))
                    if resume != first[0]:
                        out_resumes[first[0]] = resume
                if begin - 1 > done_to:
                    out.extend(lines[done_to:begin - 1])
                first = lines[begin - 1]
                resume, texts, size, flags = first[0], None, len(first[1]), first[4]
            elif first is None:  # the batch's first line, nothing open: it starts a record
                first = lines[begin]
                resume, texts, size, flags = first[0], None, len(first[1]), first[4]
                begin += 1
            done_to = end
            if begin == end:
                continue
            run_lines = lines[begin:end]
            part = list(map(_TEXT, run_lines))
            grown = size + sum(map(len, part)) + len(part)
            if (1 if texts is None else len(texts)) + len(part) <= max_lines and grown - 1 < max_bytes:
                if texts is None:  # the whole run joins (each line's checks hold as the last one's does)
                    texts = [first[1], *part]
                else:
                    texts.extend(part)
                size = grown
                if truncated:
                    flags |= reduce(or_, map(_LINE_FLAGS, run_lines), 0) & FLAG_TRUNCATED
                joined += len(part)
                continue
            for raw in run_lines:  # a limit falls inside the run: line by line
                text: str = raw[1]
                if (texts is None or len(texts) < max_lines) and size + len(text) < max_bytes:
                    if texts is None:
                        texts = [first[1], text]
                    else:
                        texts.append(text)
                    size += len(text) + 1
                    flags |= raw[4] & FLAG_TRUNCATED
                    joined += 1
                else:
                    append(first if texts is None and flags == first[4] else _joined_raw(first, texts, flags))
                    if resume != first[0]:
                        out_resumes[first[0]] = resume
                    first = raw
                    resume, texts, size, flags = raw[0], None, len(text), raw[4]
        if done_to < len(lines):
            if first is not None:
                append(first if texts is None and flags == first[4] else _joined_raw(first, texts, flags))
                if resume != first[0]:
                    out_resumes[first[0]] = resume
            out.extend(lines[done_to:-1])
            first = lines[-1]
            resume, texts, size, flags = first[0], None, len(first[1]), first[4]
        assert first is not None
        opened[stream] = [first, resume, now, texts, size, flags, None]
        self.joined_lines += joined
        return True

    def continue_open(self, raw: RawLine, now: float) -> bool:
        """Append `raw` to its stream's open record if it continues it (the next file of a rotated one:
        collectors/files/rotation_joins.py); False, and nothing changed, if it would start a record."""
        record = self.open.get(raw[2])
        if record is None or raw[4] & FLAG_BASE64:
            return False
        rule, text, texts = self.rule, raw[1], record[_TEXTS]
        if (texts is not None and len(texts) >= rule.max_lines) or record[_SIZE] + len(text) >= rule.max_bytes \
                or not rule.joins(text, record[_BLOCK] or rule.stateless_block):
            return False
        self.push_into([raw], {}, now, [], {})  # it joins: nothing closes
        return True

    def flush_due(self, now: float) -> list[Emitted]:
        """Close records idle for `flush_timeout`; return what is ready."""
        for record in [r for r in self.open.values() if now - r[_SEEN] >= self.rule.timeout]:
            self._close(record)
        return self._release()

    def flush_all(self) -> list[Emitted]:
        for record in list(self.open.values()):
            self._close(record)
        return self._release()

    @property
    def min_resume(self) -> int | None:
        """Where the earliest record not yet returned began (None: nothing held)."""
        starts = [r[_RESUME] for r in self.open.values()] + [resume for _, resume, _ in self._closed]
        return min(starts) if starts else None

    @property
    def holding(self) -> bool:
        return bool(self.open or self._closed)

    def _close(self, record: list[Any]) -> None:
        first = record[_RAW]
        del self.open[first[2]]
        heapq.heappush(self._closed, (first[0], record[_RESUME], _closed_raw(record)))

    def _release_into(self, out: list[RawLine], out_resumes: dict[int, int]) -> None:
        """Closed records that no open record precedes, in position order."""
        opened, closed = self.open, self._closed
        limit = None if not opened else next(iter(opened.values()))[_RAW][0] if len(opened) == 1 else \
            min(r[_RAW][0] for r in opened.values())
        while closed and (limit is None or closed[0][0] < limit):
            pos, resume, raw = heapq.heappop(closed)
            out.append(raw)
            if resume != pos:
                out_resumes[pos] = resume

    def _release(self) -> list[Emitted]:
        out: list[RawLine] = []
        out_resumes: dict[int, int] = {}
        if self._closed:
            self._release_into(out, out_resumes)
        return _with_resumes(out, out_resumes)
