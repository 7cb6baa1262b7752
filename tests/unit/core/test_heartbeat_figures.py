"""Heartbeat figures from a component's own Prometheus registry: rates between beats, lag, examples."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from core.heartbeat_figures import (
    EXAMPLE_CHARS,
    INTAKE,
    INTAKE_EXAMPLES,
    FigureReader,
    catch_up_seconds,
    latest_example,
    note_dead_letter,
    worker_recipe,
)
from core.redact import MASK


def test_rates_are_counter_deltas_over_time_and_dead_letters_carry_the_latest_example() -> None:
    registry = CollectorRegistry()
    received = Counter("logweave_intake_lines_received", "", ["protocol"], registry=registry)
    lines = Counter("logweave_intake_lines", "", ["protocol"], registry=registry)
    rejected = Counter("logweave_intake_rejections", "", ["protocol", "reason"], registry=registry)
    reader = FigureReader(INTAKE, registry, "intake-h-8080", interval=5.0)
    received.labels("http").inc(100)
    lines.labels("http").inc(100)
    first = reader.beat(now=1000.0)
    assert first.lines_in_per_s == 0.0  # one read: no rate yet
    received.labels("http").inc(50)
    received.labels("forward").inc(50)
    lines.labels("http").inc(50)
    lines.labels("forward").inc(50)
    rejected.labels("http", "too_large").inc(2)
    note_dead_letter(INTAKE_EXAMPLES + "too_large", "x" * 1000)  # the intake notes its examples apart
    second = reader.beat(now=1010.0)
    assert second.lines_in_per_s == 10.0 and second.lines_out_per_s == 10.0
    assert second.dead_letters["too_large"].count == 2
    assert second.dead_letters["too_large"].example == "x" * 300  # cut
    assert (second.kind, second.id, second.state) == ("intake", "intake-h-8080", "running")


def test_worker_lag_leaves_out_sink_topics_and_changelogs() -> None:
    registry = CollectorRegistry()
    lag = Gauge("logweave_consumer_lag", "", ["topic", "partition"], registry=registry)
    stage = Counter("logweave_lines_total", "", ["stage"], registry=registry)
    lag.labels("logs.raw", "0").set(30)
    lag.labels("logs.parsed", "1").set(10)
    lag.labels("sink.file", "0").set(1000)
    lag.labels("logweave-traces-changelog", "0").set(500)
    reader = FigureReader(worker_recipe(), registry, "w", interval=5.0)
    reader.beat(now=0.0)
    stage.labels("parse_in").inc(40)
    stage.labels("routed").inc(20)
    heartbeat = reader.beat(now=2.0)
    assert heartbeat.lag == 40
    assert heartbeat.stages["parse_in"] == 20.0 and heartbeat.lines_out_per_s == 10.0
    assert heartbeat.lag_seconds == 4.0  # 40 records at 10 lines/s


def test_catch_up_is_unknown_when_nothing_moves() -> None:
    assert catch_up_seconds(None, 5.0) is None
    assert catch_up_seconds(0, 0.0) == 0.0
    assert catch_up_seconds(10, 0.0) is None
    assert catch_up_seconds(10, 5.0) == 2.0


def test_an_example_has_its_secrets_masked_even_where_the_cut_falls_inside_one() -> None:
    note_dead_letter("with_secret", b'{"msg":"login","password":"hunter2","db":"postgres://app:s3cret@db:5432/x"}')
    shown = latest_example("with_secret")
    assert shown is not None and "hunter2" not in shown and "s3cret" not in shown and MASK in shown
    assert '"msg":"login"' in shown  # the rest stays readable
    # a URL whose password runs across the cut: masked before cutting, so no prefix of it is shown
    line = "x" * (EXAMPLE_CHARS - 20) + " postgres://app:topsecretvalue@db/x"
    assert line[:EXAMPLE_CHARS].endswith("app:tops")  # cut first, then masked, "tops" would show
    note_dead_letter("at_the_cut", line)
    cut = latest_example("at_the_cut")
    assert cut is not None and len(cut) == EXAMPLE_CHARS and "tops" not in cut and cut.endswith("app:****")
    assert latest_example("never noted") is None
