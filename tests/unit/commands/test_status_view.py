"""`logweave status` as text: pipeline order, what an operator needs, and 80 columns at most."""

from __future__ import annotations

from commands.status_view import render
from core.heartbeat import DeadLetterFigure, Heartbeat, PipelineView, SinkFigure


def beat(kind: str, id_: str, **fields: object) -> Heartbeat:
    return Heartbeat(kind=kind, id=id_, host="node-with-a-rather-long-host-name", version="0.1.0+g1234567890abc",
                     state="running", at=1000.0, interval=5.0, **fields)  # type: ignore[arg-type]


def busy_view() -> PipelineView:
    view = PipelineView()
    beats = [
        beat("drain", "logweave-node-with-a-rather-long-host-name-6066/elasticsearch", lines_out_per_s=1234.0,
             lag=123_456, lag_seconds=100.0,
             sink=SinkFigure("elasticsearch", "failing", "ConnectionError: 127.0.0.1:9200 refused " * 3, 4000.0)),
        beat("worker", "logweave-node-with-a-rather-long-host-name-6066", lines_in_per_s=12_345.0,
             lines_out_per_s=12_000.0, lag=50, figures={"open_traces": 1500.0, "traces_closed_per_minute": 600.0},
             dead_letters={"not_json": DeadLetterFigure(12, "this line\tis not JSON " * 10)}),
        beat("file-collector", "file-collector-node-9101", lines_in_per_s=12_400.0, lines_out_per_s=12_400.0),
    ]
    for b in beats:
        view.fold(b.id.encode(), b.encode())
    return view


def test_every_line_fits_80_columns_and_stages_come_in_pipeline_order() -> None:
    lines = render(busy_view().summary(now=1001.0))
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    text = "\n".join(lines)
    stage_rows = [line.split()[0] for line in lines[lines.index(next(x for x in lines if x.startswith("STAGE"))) + 1:]
                  if line][:3]
    assert stage_rows == ["file-collector", "worker", "drain"]
    assert "3 components (3 running)" in text
    assert "elasticsearch failing" in " ".join(text.split())
    assert "123k" in text and "ConnectionError" in text and "67m" in text  # lag, last error, unwritten age
    assert "…-name-6066/elasticsearch " in text  # a long id keeps its end: port and sink
    assert "TRACES  open 1,500, closed 600 per minute" in text
    assert "not_json" in text and "e.g. this line is not JSON" in text  # tabs folded to spaces


def test_silent_components_show_missing_and_an_empty_topic_says_so() -> None:
    view = busy_view()
    text = "\n".join(render(view.summary(now=1000.0 + 60)))
    assert "missing" in text and "running" not in text.split("COMPONENT", 1)[1].split("TRACES")[0]
    assert "No heartbeats yet" in "\n".join(render(PipelineView().summary(now=0.0)))
