"""watch_group_coordinators: a coordination task that dies reports its group and innermost cause once;
one that ends because its consumer closes reports nothing. Real aiokafka coordinators (with one
step made to fail) on a client that never connects."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.consumer.subscription_state import SubscriptionState

from kafka_io.coordinator_watch import describe_death, root_cause, watch_group_coordinators


@pytest.fixture
def deaths() -> Iterator[list[tuple[str, BaseException]]]:
    seen: list[tuple[str, BaseException]] = []
    watch_group_coordinators(lambda group, cause: seen.append((group, cause)))
    yield seen
    watch_group_coordinators(lambda group, cause: None)


def coordinator(group: str) -> tuple[GroupCoordinator, SubscriptionState]:
    subscription = SubscriptionState()
    subscription.register_fetch_waiters(set())  # as the consumer's Fetcher does
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1")  # never started: nothing is sent
    return GroupCoordinator(client, subscription, group_id=group), subscription


async def test_a_coordination_that_dies_reports_its_group_and_the_innermost_cause(
        deaths: list[tuple[str, BaseException]]) -> None:
    member, subscription = coordinator("workers")

    async def garbled() -> None:  # what aiokafka's assignment decode raised in the incident
        try:
            struct.unpack(">h", b"\x00")
        except struct.error as exc:
            raise ValueError("Error encountered when attempting to convert value") from exc

    member.ensure_coordinator_known = garbled  # type: ignore[method-assign]
    subscription.subscribe({"logs.raw"})
    for _ in range(50):
        if deaths:
            break
        await asyncio.sleep(0.01)
    assert [(group, type(cause)) for group, cause in deaths] == [("workers", struct.error)]
    assert describe_death(*deaths[0]) == (
        "Kafka group coordination for group 'workers' died on an unexpected error "
        "(struct.error: unpack requires a buffer of 2 bytes); this member can no longer join its group")
    await member.close()
    assert len(deaths) == 1


async def test_a_closed_coordinator_reports_nothing(deaths: list[tuple[str, BaseException]]) -> None:
    member, _ = coordinator("workers")
    await member.close()
    await asyncio.sleep(0)
    assert deaths == []


def test_the_line_is_one_line_with_secrets_masked() -> None:
    cause = RuntimeError("login failed\nfor kafka://user:hunter2@broker:9092")
    line = describe_death("g", cause)
    assert "\n" not in line and "hunter2" not in line and "(RuntimeError: login failed for kafka://" in line


def test_the_innermost_cause_is_named() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("middle") from inner
    except ValueError as outer:
        assert isinstance(root_cause(outer), KeyError)
