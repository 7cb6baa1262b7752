"""accept_empty_assignments: a zero-length consumer-protocol assignment (what Kafka's coordinator sends a
member the leader's plan leaves out) decodes as no partitions; any other bytes decode as before."""

from __future__ import annotations

from io import BytesIO

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocol, ConsumerProtocolMemberAssignment

from kafka_io.kafka_compat import accept_empty_assignments


@pytest.fixture(autouse=True)
def accepted() -> None:
    accept_empty_assignments()
    accept_empty_assignments()  # idempotent: not wrapped twice


@pytest.mark.parametrize("data", [b"", BytesIO(b""), BytesIO(b"\x00\x00\x00\x00\x00\x00")])
def test_an_empty_assignment_is_no_partitions(data: bytes | BytesIO) -> None:
    if isinstance(data, BytesIO):
        data.read()  # a stream already read to its end: nothing left for the assignment
    assignment = ConsumerProtocol.ASSIGNMENT.decode(data)
    assert (assignment.version, assignment.partitions(), assignment.user_data) == (0, [], b"")


def test_a_real_assignment_still_decodes() -> None:
    encoded = ConsumerProtocolMemberAssignment(0, [("logs.raw", [0, 3])], b"meta").encode()
    assignment = ConsumerProtocol.ASSIGNMENT.decode(encoded)
    assert [tp.partition for tp in assignment.partitions()] == [0, 3] and assignment.user_data == b"meta"


@pytest.mark.parametrize("garbled", [b"\x00", b"\x00\x00\x00\x00\x00\x05ab"])
def test_a_garbled_assignment_still_fails(garbled: bytes) -> None:
    with pytest.raises(ValueError):
        ConsumerProtocol.ASSIGNMENT.decode(garbled)
