"""How a worker stays a sound consumer-group member: an empty assignment is "no partitions", and a
group coordination that dies ends the worker with one line so that its supervisor restarts it.

- Kafka hands a member the leader's plan left out a zero-length assignment (legal: a group with more
  members than partitions has idle members). aiokafka then decodes it (kafka_io/kafka_compat.py) as
  no partitions, and faust's assignor, which reads its table-placement metadata from the assignment's
  user data, takes the empty user data as no active and no standby partitions instead of failing on it.
- aiokafka's coordination task ends for good on an unexpected error (kafka_io/coordinator_watch.py),
  and faust never notices while it holds no partitions: the worker stayed up and unready, holding
  its static member id; a member that held partitions kept fetching them after the group had given
  them to others (seen with plain aiokafka consumers: two members held the same three partitions).
  It now prints one line naming the cause and exits with EXIT_COORDINATION.
  It exits at once rather than through faust's graceful stop: with the coordinator gone no offset can
  be committed anyway (commits need the group generation), so what was read since the last commit is
  read again by whoever gets the partitions, as after a SIGKILL (delivery is at-least-once and the
  writes idempotent); and a graceful stop waits on the consumer whose group task is dead.
"""

from __future__ import annotations

import logging
import os
import sys

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment

from core.startup import EXIT_COORDINATION
from kafka_io.coordinator_watch import describe_death, watch_group_coordinators

log = logging.getLogger(__name__)


class EmptyAssignmentTolerantAssignor(PartitionAssignor):  # type: ignore[misc]
    """faust's assignor, reading an assignment with no user data as no partitions at all."""

    def on_assignment(self, assignment: object) -> None:
        if getattr(assignment, "user_data", None) or getattr(assignment, "assignment", None):
            super().on_assignment(assignment)
            return
        log.warning("the group coordinator assigned this member nothing (an empty assignment): "
                    "it holds no partitions until the next rebalance")
        self._assignment = ClientAssignment(actives={}, standbys={})
        self._topic_groups = {}
        self._active_tps = set()
        self._standby_tps = set()
        self.changelog_distribution = {}
        self.external_topic_distribution = {}


def exit_when_coordination_dies() -> None:
    """From now on, a dead group coordination in this process ends it (see the module docstring)."""
    watch_group_coordinators(_exit)


def _exit(group: str, cause: BaseException) -> None:
    print(f"logweave worker: {describe_death(group, cause)}; exiting with status {EXIT_COORDINATION} "
          "so that it is restarted", file=sys.stderr, flush=True)
    os._exit(EXIT_COORDINATION)
