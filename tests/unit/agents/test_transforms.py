"""Routing-rule transforms: field edits, redaction, dropping, and sampling that keeps or drops whole traces.

The sampling tests run the same traces through separate Router instances (two workers) and through
the TraceGrouper (trace rules decide at close, where errors are known), and check every trace came
out whole or not at all. The grouper runs on the in-memory table of test_grouper.py.
"""

from __future__ import annotations

import random
from typing import Any, cast

import orjson
import pytest

from agents.grouper import TraceGrouper
from agents.routing import Router
from agents.transforms import MASK, trace_kept
from core.models import P_TEXT, P_TRACE, ParsedChunk
from core.settings import RoutingSettings, Settings
from tables.trace_table import TraceWindowTable
from tests.unit.agents.test_grouper import FAR, Done, MemoryTraceTable, S

SOURCES = [{"kind": "pod-api", "namespace": "shop", "pod": "cart-1", "labels": {"app": "cart"}}]


def router(**transforms: Any) -> Router:
    return Router(RoutingSettings(rules=[{"name": "r", "sinks": ["file"], "transforms": transforms}]), ["file"])


def entry(doc: dict[str, Any], trace: str = "t1", level: str = "info", pos: int = 1) -> list[Any]:
    return [0, "sid", pos, 1, trace, level, "cart", orjson.dumps(doc).decode(), "stdout"]


def sent(r: Router, line: list[Any]) -> dict[str, Any] | None:
    out = r.line_deliveries(line, SOURCES)
    if not out:
        return None
    ((_sink, delivered),) = out
    doc: dict[str, Any] = orjson.loads(delivered[P_TEXT])
    return doc


def test_add_rename_drop_keep() -> None:
    r = router(add={"cluster": "eu-1", "ns": "${source.namespace}", "app": "${source.labels.app}",
                    "where": "${source.namespace}/${source.pod}"},
               rename={"msg": "message"}, drop=["password"])
    doc = sent(r, entry({"msg": "hi", "password": "p", "n": 1}))
    assert doc == {"n": 1, "cluster": "eu-1", "ns": "shop", "app": "cart", "where": "shop/cart-1", "message": "hi"}
    assert sent(router(keep=["msg"]), entry({"msg": "hi", "n": 1})) == {"msg": "hi"}


def test_the_original_line_is_not_changed_for_grouping_or_other_rules() -> None:
    line = entry({"email": "a@b.io"})
    text = line[P_TEXT]
    sent(router(redact=[{"builtin": "email"}]), line)
    assert line[P_TEXT] == text


def test_builtin_redaction_mask_and_hash() -> None:
    r = router(redact=[{"builtin": "email"}, {"builtin": "bearer"}, {"builtin": "card"}])
    doc = sent(r, entry({"msg": "user alice@example.com paid with 4111 1111 1111 1111, order 1234567890123",
                         "headers": {"Authorization": "Bearer eyJhbGciOi.J9.sig-x_y"}, "n": 5}))
    assert doc is not None
    assert doc["msg"] == f"user {MASK} paid with {MASK}, order 1234567890123"  # not a Luhn number: kept
    assert doc["headers"]["Authorization"] == f"Bearer {MASK}" and doc["n"] == 5
    hashed = router(redact=[{"builtin": "email", "action": "hash"}])
    first, second = (sent(hashed, entry({"who": "alice@example.com"})) for _ in range(2))
    assert first == second and first is not None and first["who"].startswith("hash:")
    assert "alice" not in first["who"]


def test_custom_pattern_limited_to_fields_and_counted() -> None:
    r = router(redact=[{"pattern": r"\d{3}-\d{2}-\d{4}", "fields": ["ssn"]}])
    doc = sent(r, entry({"ssn": "123-45-6789", "note": "123-45-6789"}))
    assert doc == {"ssn": MASK, "note": "123-45-6789"}
    sent(r, entry({"ssn": "none"}))
    transformer = r.line_rules[0].transformer
    assert transformer is not None and transformer.counts == {"kept": 2, "dropped": 0, "sampled_out": 0,
                                                              "redacted": 1}


def test_drop_by_level_and_pattern() -> None:
    r = router(drop_below="info", drop_matching=["healthz"])
    assert sent(r, entry({"m": 1}, level="debug")) is None
    assert sent(r, entry({"m": 1}, level="")) == {"m": 1}  # no level: kept
    assert sent(r, entry({"path": "/healthz"}, level="error")) is None
    assert sent(r, entry({"path": "/cart"}, level="warn")) == {"path": "/cart"}
    transformer = r.line_rules[0].transformer
    assert transformer is not None and transformer.counts["dropped"] == 2


def test_line_rule_sampling_keeps_whole_traces_on_every_worker() -> None:
    rng = random.Random(7)
    lines = [entry({"n": n}, trace=f"trace-{n % 400}", pos=n) for n in range(4000)]
    workers = [router(sample={"rate": 0.25}), router(sample={"rate": 0.25})]
    kept: dict[str, set[bool]] = {}
    for line in rng.sample(lines, len(lines)):  # any order, any worker
        delivered = workers[rng.randrange(2)].line_deliveries(line, SOURCES)
        kept.setdefault(line[P_TRACE], set()).add(bool(delivered))
    assert all(len(outcomes) == 1 for outcomes in kept.values()), "a trace was split by sampling"
    fraction = sum(outcomes == {True} for outcomes in kept.values()) / len(kept)
    assert 0.18 < fraction < 0.32
    assert {t for t, o in kept.items() if o == {True}} == {t for t in kept if trace_kept(t, 0.25)}


def test_untraced_lines_are_not_sampled_out() -> None:
    assert sent(router(sample={"rate": 0.0}), entry({"n": 1}, trace="")) == {"n": 1}
    assert sent(router(sample={"rate": 0.0}), entry({"n": 1}, trace="t")) is None


def grouper_with(rules: list[dict[str, Any]]) -> tuple[TraceGrouper, list[tuple[str, bytes]]]:
    settings = Settings(traces={"gap": 30, "allowed_lateness": 5}, routing={"rules": rules})
    out: list[tuple[str, bytes]] = []
    grouper = TraceGrouper(cast(TraceWindowTable, MemoryTraceTable()), Router(settings.routing, ["file"]), settings,
                           lambda sink, value, partition: (out.append((sink, value)), Done())[1],
                           lambda value, partition: Done())
    return grouper, out


def test_trace_rule_sampling_keeps_traces_with_errors_and_whole_traces_otherwise() -> None:
    grouper, out = grouper_with([{"name": "sampled", "sinks": ["file"], "mode": "trace",
                                  "transforms": {"sample": {"rate": 0.2}, "add": {"sampled": "yes"}}}])
    traces = [f"t{n}" for n in range(300)]
    lines = []
    for n, trace in enumerate(traces):
        for k in range(4):
            level = "error" if n % 10 == 0 and k == 3 else "info"
            lines.append([0, "sid", n * 10 + k, (n + k) * S, trace, level, "cart", f'{{"n":{n},"k":{k}}}', "stdout"])
    for start in range(0, len(lines), 97):
        grouper.process_chunk(0, SOURCES, lines[start:start + 97])
    grouper.close_overdue(0, FAR)
    delivered: dict[int, list[int]] = {}
    for _, record in out:
        for line in ParsedChunk.decode(record).lines:
            doc = orjson.loads(line[P_TEXT])
            assert doc["sampled"] == "yes"
            delivered.setdefault(doc["n"], []).append(doc["k"])
    assert all(sorted(ks) == [0, 1, 2, 3] for ks in delivered.values()), "a trace was delivered in part"
    errored = {n for n in range(300) if n % 10 == 0}
    assert errored <= set(delivered), "a trace with an error line was sampled out"
    assert set(delivered) - errored == {n for n in range(300) if n not in errored and trace_kept(f"t{n}", 0.2)}
    assert 20 < len(set(delivered) - errored) < 90


def test_bad_transform_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="drop_below 'loud'"):
        router(drop_below="loud")
    with pytest.raises(ValueError, match="exactly one of `builtin`"):
        router(redact=[{"builtin": "email", "pattern": "x"}])
    with pytest.raises(ValueError, match="less than or equal to 1"):
        router(sample={"rate": 1.5})
