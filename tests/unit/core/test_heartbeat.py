"""The heartbeat record and the pipeline view folded from the compacted topic."""

from __future__ import annotations

import orjson
import pytest

from core.heartbeat import DeadLetterFigure, Heartbeat, HeartbeatError, PipelineView, SinkFigure


def beat(kind: str, id_: str, at: float = 100.0, **fields: object) -> Heartbeat:
    return Heartbeat(kind=kind, id=id_, host="h", version="1.0", state="running", at=at, interval=5.0,
                     **fields)  # type: ignore[arg-type]


def test_a_heartbeat_survives_the_topic_and_a_stranger_record_is_refused() -> None:
    original = beat("drain", "w-1/file", lines_out_per_s=12.5, lag=40, lag_seconds=3.2,
                    dead_letters={"rejected": DeadLetterFigure(2, '{"bad": 1}')},
                    sink=SinkFigure("file", "failing", "disk full", 7.0), figures={"open_traces": 3.0})
    assert Heartbeat.decode(original.encode()) == original
    newer = orjson.loads(original.encode())
    newer["cpu_seconds"], newer["sink"]["queue"] = 1.5, 3  # fields a newer version may add
    assert Heartbeat.decode(orjson.dumps(newer)) == original  # read during a rolling upgrade
    for stranger in (b"not json", b"[]", orjson.dumps({"format": 99, "kind": "x"}),
                     orjson.dumps({"format": 1, "kind": "worker"})):  # a field missing
        with pytest.raises(HeartbeatError):
            Heartbeat.decode(stranger)


def test_fold_keeps_the_latest_per_component_and_forgets_on_a_tombstone() -> None:
    view = PipelineView()
    view.fold(b"w-1", beat("worker", "w-1", at=100.0, lines_in_per_s=1.0).encode())
    view.fold(b"w-1", beat("worker", "w-1", at=90.0, lines_in_per_s=9.0).encode())  # older, read late
    view.fold(b"c-1", beat("file-collector", "c-1").encode())
    view.fold(b"junk", b"junk")
    assert view.components["w-1"].lines_in_per_s == 1.0
    assert view.refused == 1
    view.fold(b"c-1", None)
    assert list(view.components) == ["w-1"]


def test_current_lists_in_pipeline_order_and_marks_the_silent_missing() -> None:
    view = PipelineView()
    for kind, id_, at in (("drain", "w/file", 100.0), ("worker", "w", 100.0), ("intake", "i", 100.0),
                          ("file-collector", "c", 80.0)):
        view.fold(id_.encode(), beat(kind, id_, at=at).encode())
    stopped = beat("pod-collector", "p", at=10.0)
    stopped.state = "stopped"
    view.fold(b"p", stopped.encode())
    current = view.current(now=100.0)
    assert [b.kind for b in current] == ["file-collector", "pod-collector", "intake", "worker", "drain"]
    assert {b.id: b.state for b in current} == {"c": "missing", "p": "stopped", "i": "running", "w": "running",
                                                "w/file": "running"}


def test_summary_sums_running_stages_and_dead_letters_across_components() -> None:
    view = PipelineView()
    view.fold(b"w1", beat("worker", "w1", lines_in_per_s=10.0, lag=5,
                          dead_letters={"not_json": DeadLetterFigure(2, "old example")}).encode())
    view.fold(b"w2", beat("worker", "w2", lines_in_per_s=20.0, lag=7,
                          dead_letters={"not_json": DeadLetterFigure(3, None)}).encode())
    view.fold(b"w1/file", beat("drain", "w1/file", sink=SinkFigure("file", "ready")).encode())
    summary = view.summary(now=101.0)
    worker = next(s for s in summary["stages"] if s["kind"] == "worker")
    assert (worker["lines_in_per_s"], worker["lag"], worker["components"]) == (30.0, 12, 2)
    assert summary["dead_letters"]["not_json"]["count"] == 5
    assert summary["dead_letters"]["not_json"]["example"] == "old example"
    assert summary["sinks"][0]["name"] == "file" and summary["sinks"][0]["component"] == "w1/file"
    orjson.dumps(summary)  # what --json prints


def test_a_component_silent_past_forget_after_is_dropped_and_one_that_beats_again_stays() -> None:
    view = PipelineView(forget_after=3600.0)
    view.fold(b"gone", beat("intake", "gone", at=100.0).encode())
    view.fold(b"back", beat("file-collector", "back", at=100.0).encode())
    assert {b.id: b.state for b in view.current(now=3650.0)} == {"gone": "missing", "back": "missing"}
    view.fold(b"back", beat("file-collector", "back", at=3650.5).encode())  # restarted under the same id
    assert {b.id: b.state for b in view.current(now=3660.0)} == {"gone": "missing", "back": "running"}
    assert [b.id for b in view.current(now=3701.0)] == ["back"]
    assert "gone" not in view.components  # dropped, not only hidden


def test_the_intake_refusals_are_listed_apart_from_the_workers_dead_letters_of_the_same_reason() -> None:
    view = PipelineView()
    view.fold(b"w1", beat("worker", "w1", dead_letters={"not_json": DeadLetterFigure(2, "a raw line")}).encode())
    view.fold(b"i1", beat("intake", "i1", dead_letters={"not_json": DeadLetterFigure(4, "{bad record")}).encode())
    dead = view.summary(now=101.0)["dead_letters"]
    assert dead["not_json"] == {"count": 2, "example": "a raw line", "components": ["w1"]}
    assert dead["intake: not_json"] == {"count": 4, "example": "{bad record", "components": ["i1"]}
