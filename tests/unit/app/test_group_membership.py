"""The worker's assignor takes an empty assignment as no partitions and any other as faust does; a dead
group coordination ends the worker process with one line and EXIT_COORDINATION (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys

from aiokafka.coordinator.protocol import ConsumerProtocol, ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata
from faust.types import TP

from app.faust_app import create_app
from app.group_membership import EmptyAssignmentTolerantAssignor
from core.settings import Settings
from core.startup import EXIT_COORDINATION


def test_an_empty_assignment_leaves_the_worker_with_no_partitions() -> None:
    assignor = create_app(Settings()).assignor
    assert isinstance(assignor, EmptyAssignmentTolerantAssignor)
    real = ClientMetadata(assignment=ClientAssignment(actives={"logs.raw": [1]}, standbys={"logs.raw": [0]}),
                          url=str(assignor._url), changelog_distribution={})
    assignor.on_assignment(ConsumerProtocolMemberAssignment(
        0, [("logs.raw", [1])], assignor._compress(real.dumps())))
    assert assignor.assigned_actives() == {TP("logs.raw", 1)} and assignor.assigned_standbys() == {TP("logs.raw", 0)}

    assignor.on_assignment(ConsumerProtocol.ASSIGNMENT.decode(b""))  # what the compat layer makes of 0 bytes
    assert assignor.assigned_actives() == set() and assignor.assigned_standbys() == set()
    assert assignor.changelog_distribution == {} and assignor._topic_groups == {}


def test_a_dead_coordination_ends_the_process_with_one_line() -> None:
    script = ("import struct\n"
              "from app.group_membership import _exit\n"
              "try:\n    struct.unpack('>h', b'')\n"
              "except struct.error as exc:\n    _exit('logweave', exc)\n"
              "print('still running')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_COORDINATION and done.stdout == ""
    assert done.stderr.splitlines() == [
        "logweave worker: Kafka group coordination for group 'logweave' died on an unexpected error "
        "(struct.error: unpack requires a buffer of 2 bytes); this member can no longer join its group; "
        f"exiting with status {EXIT_COORDINATION} so that it is restarted"]
