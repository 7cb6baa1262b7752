"""The heartbeat age gauges a worker exports from its view of the heartbeat topic."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from app.heartbeat_metrics import AGE, INTERVAL, install
from core.heartbeat import Heartbeat, PipelineView


def beat(kind: str, id_: str, at: float, state: str = "running", interval: float = 5.0) -> bytes:
    return Heartbeat(kind=kind, id=id_, host="h", version="1", state=state, at=at, interval=interval).encode()


def test_ages_are_computed_at_scrape_time_and_stopped_or_forgotten_components_have_none() -> None:
    view = PipelineView(forget_after=600.0)
    view.fold(b"c", beat("file-collector", "file-collector-n1-9101", at=1000.0))
    view.fold(b"i", beat("intake", "intake-h-8080", at=1010.0, interval=2.0))
    view.fold(b"p", beat("pod-collector", "pod-collector-h-9102", at=900.0, state="stopped"))
    view.fold(b"o", beat("worker", "old-worker", at=100.0))
    registry = CollectorRegistry()
    now = [1012.0]
    collector = install(lambda: view, registry)
    collector.clock = lambda: now[0]

    assert registry.get_sample_value(AGE, {"component": "file-collector-n1-9101", "kind": "file-collector"}) == 12.0
    assert registry.get_sample_value(AGE, {"component": "intake-h-8080", "kind": "intake"}) == 2.0
    assert registry.get_sample_value(INTERVAL, {"component": "intake-h-8080", "kind": "intake"}) == 2.0
    now[0] = 1042.0  # no new beat: the age grows between scrapes
    assert registry.get_sample_value(AGE, {"component": "file-collector-n1-9101", "kind": "file-collector"}) == 42.0
    text = generate_latest(registry).decode()
    assert "pod-collector-h-9102" not in text  # stopped cleanly: not missing
    assert "old-worker" not in text  # silent for more than forget_after
    assert registry.get_sample_value(AGE, {"component": "old-worker", "kind": "worker"}) is None


def test_install_once_per_registry_and_follow_the_newest_view() -> None:
    registry = CollectorRegistry()
    first, second = PipelineView(), PipelineView()
    second.fold(b"w", beat("worker", "w-h-6066", at=1e18))  # in the future: age 0, never negative
    install(lambda: first, registry)
    install(lambda: second, registry)  # a second worker App in the same process: no duplicate error
    assert registry.get_sample_value(AGE, {"component": "w-h-6066", "kind": "worker"}) == 0.0


def test_a_new_registry_gets_its_own_collector_even_at_a_collected_ones_address() -> None:
    """install() once remembered registries by id(); a new registry at a freed one's address then got none."""
    view = PipelineView()
    view.fold(b"w", beat("worker", "w-h-1", at=1e18))
    for _ in range(200):  # freed and new registries reuse addresses within a few rounds
        registry = CollectorRegistry()
        install(lambda: view, registry)
        assert registry.get_sample_value(AGE, {"component": "w-h-1", "kind": "worker"}) == 0.0
        del registry
