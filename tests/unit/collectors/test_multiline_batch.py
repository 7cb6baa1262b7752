"""The joiner's batch path decides exactly as its per-line loop, and the detectors' first-character
lookaheads change no decision.

`MultilineJoiner.push_into` takes one-stream batches under a stateless rule through `_push_batch`
(decisions for the whole batch in C, single-line records passed on as slices). A rule whose
`batch_marks` is None always takes the per-line loop - the reference here. Both joiners get the same
lines in the same batches (the runtimes' corpora, JSON lines and generated ones, one or two streams,
truncated and undecodable lines, merged partial lines with resume offsets, tight limits) and must
return the same records, resume offsets, held positions and counts after every batch.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.multiline import CompiledRule, MultilineJoiner
from collectors.multiline_detectors import _JAVA, _NODE
from core.models import FLAG_BASE64, FLAG_TRUNCATED
from core.rule_settings import MultilineRule

DATA = Path(__file__).parents[2] / "data" / "multiline"
CORPUS = [line for name in ("java", "python", "go", "node") for line in (DATA / f"{name}.log").read_text().splitlines()]
JSON = '{"time":"2025-06-10T08:25:41.630Z","level":"info","msg":"request handled","traceId":"t-1"}'
PREFIXES = ["", "\t", " ", "  ", "\tat ", "    at ", "Caused by: ", "\t... 3 more", "Suppressed: ", "java.lang.",
            "com.x.FooException", "{", "2023-11-14 ", "[cause]: ", "Node.js v2", "\u00a0", "\x1c", "ERROR ", "$a.", "_"]
# the detectors' patterns as they were before their first-character lookaheads and reordering
PLAIN_JAVA = re.compile(r"^(?:\s+at |\s*Caused by: |\s+\.\.\. \d+ (?:more|common frames omitted)|\s*Suppressed: |\t"
                        r"|(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::|$))")
PLAIN_NODE = re.compile(r"^(?:\s+at |\s+\^+\s*$|\s*\[cause\]: |Node\.js v\d)")
RULES: list[dict[str, Any]] = [
    {"detectors": ["java"]},
    {"continuation": r"^\s"},
    {"start": r"^\d{4}-\d{2}-\d{2} "},
    {"detectors": ["java"], "continuation": r"^(?:\{|ERROR)"},
    {"detectors": ["java"], "start": r"^\{"},
    {"start": r"^\d{4}", "continuation": r"^java"},
]

texts = st.one_of(st.sampled_from([*CORPUS, JSON]),
                  st.builds(str.__add__, st.sampled_from(PREFIXES), st.text(max_size=12)))
lines = st.tuples(texts, st.sampled_from(["stdout", "stderr"]),
                  st.sampled_from([0, 0, 0, FLAG_TRUNCATED, FLAG_BASE64]))


class Counted(MultilineJoiner):
    """Counts the batches its batch path took."""

    batches = 0

    def _push_batch(self, lines: list[Any], now: float, out: list[Any], out_resumes: dict[int, int]) -> bool:
        done = super()._push_batch(lines, now, out, out_resumes)
        self.batches += done
        return done


def joiners(rule: dict[str, Any]) -> tuple[Counted, MultilineJoiner]:
    batched = CompiledRule(MultilineRule(**rule))
    reference = CompiledRule(MultilineRule(**rule))
    assert batched.batch_marks is not None
    reference.batch_marks = None
    return Counted(batched), MultilineJoiner(reference)


def state(joiner: MultilineJoiner, out: list[Any], resumes: dict[int, int]) -> tuple[Any, ...]:
    return out, resumes, joiner.min_resume, joiner.holding, joiner.joined_lines, sorted(joiner.open)


def run_both(rule: dict[str, Any], rows: list[tuple[str, str, int]], cuts: list[int], partial_every: int = 0) -> int:
    """Feed `rows` to both joiners in batches ending at `cuts`; compare after every batch. Returns the
    number of batches the batch path took."""
    batched, reference = joiners(rule)
    raws: list[list[Any]] = [[10 * n, text, stream, n, flags] for n, (text, stream, flags) in enumerate(rows)]
    resumes = {raw[0]: raw[0] - 3 for n, raw in enumerate(raws) if partial_every and n % partial_every == 1}
    bounds = sorted({c for c in cuts if 0 < c < len(raws)} | {len(raws)})
    start = 0
    for end in bounds:
        batch = raws[start:end]
        given = {pos: r for pos, r in resumes.items() if batch and batch[0][0] <= pos <= batch[-1][0]}
        results = []
        for joiner in (batched, reference):
            out: list[Any] = []
            out_resumes: dict[int, int] = {}
            joiner.push_into([list(raw) for raw in batch], dict(given), float(end), out, out_resumes)
            results.append(state(joiner, out, out_resumes))
        assert results[0] == results[1], (start, end)
        start = end
    assert batched.flush_all() == reference.flush_all()
    assert batched.open == reference.open
    return batched.batches


def test_corpora_and_json_lines_in_every_batching() -> None:
    rows = [(text, "stdout", 0) for text in [JSON, *CORPUS, JSON, JSON, *CORPUS[:30], JSON]]
    for rule in RULES:
        for size in (1, 2, 3, 7, 50, len(rows)):
            assert run_both(rule, rows, list(range(0, len(rows), size)))
            assert run_both({**rule, "max_lines": 3, "max_bytes": 1024}, rows, list(range(0, len(rows), size)))


def test_two_streams_undecodable_lines_and_resume_offsets() -> None:
    rows = [(text, "stderr" if n % 5 == 2 else "stdout", FLAG_BASE64 if n % 17 == 4 else 0)
            for n, text in enumerate(CORPUS)]
    for rule in RULES:
        assert run_both(rule, rows, list(range(0, len(rows), 6)), partial_every=4) == 0  # the per-line loop
        assert run_both(rule, rows, list(range(0, len(rows), 2)))  # one-stream batches after others


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=st.sampled_from(RULES), rows=st.lists(lines, max_size=60),
       cuts=st.lists(st.integers(0, 60), max_size=8), one_stream=st.booleans(), max_lines=st.sampled_from([2, 3, 500]),
       partial_every=st.sampled_from([0, 0, 3]))
def test_generated_lines_decide_the_same(rule: dict[str, Any], rows: list[tuple[str, str, int]], cuts: list[int],
                                         one_stream: bool, max_lines: int, partial_every: int) -> None:
    if one_stream:
        rows = [(text, "stdout", flags) for text, _, flags in rows]
    run_both({**rule, "max_lines": max_lines, "max_bytes": 1024}, rows, cuts, partial_every)


@settings(max_examples=500, deadline=None)
@given(text=texts)
def test_first_character_lookaheads_change_no_decision(text: str) -> None:
    assert bool(_JAVA.match(text)) == bool(PLAIN_JAVA.match(text))
    assert bool(_NODE.match(text)) == bool(PLAIN_NODE.match(text))


def test_first_character_lookaheads_on_every_first_character() -> None:
    for code in range(0x3000):
        first_char = chr(code)  # then what each alternative needs after its first character
        for rest in ("", "at x", "aused by: x", "uppressed: x", "... 2 more", "Caused by: x", "ode.js v2",
                     "cause]: x", "[cause]: x", ".BException:", "a.BException:", "^^^", "\tat x"):
            text = first_char + rest
            assert bool(_JAVA.match(text)) == bool(PLAIN_JAVA.match(text)), repr(text)
            assert bool(_NODE.match(text)) == bool(PLAIN_NODE.match(text)), repr(text)


def test_byte_and_line_limits_at_their_edges() -> None:
    for first, frames in itertools.product(range(100, 130), (8, 9, 10)):  # max_bytes (1024) within a run or at its end
        rows = [(JSON, "stdout", 0), ("E" * first, "stdout", 0), *[("\t" + "x" * 99, "stdout", 0)] * frames,
                (JSON, "stdout", 0)]
        for max_lines in (8, 9, 10, 11, 500):
            rule = {"detectors": ["java"], "max_lines": max_lines, "max_bytes": 1024}
            assert run_both(rule, rows, [])
            assert run_both(rule, rows, [1])
