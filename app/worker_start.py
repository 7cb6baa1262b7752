"""What a worker checks before it joins its consumer group, each failure refused with one line.

- Its static member id (KIP-345) comes from what differs between workers on one host: the web port
  faust was actually given (`--web-port`, which faust writes into `app.conf.web_port` after the App
  is built), not the setting. Two workers under one id evict each other from the group about once
  a second, so an id already held on this host is refused (a lock file per id), as is a data
  directory already in use (RocksDB partitions cannot be shared by two processes).
- Its topics exist with `kafka.partitions` partitions. The worker never creates topics: a broker
  auto-creating them would give them one partition, and the pipeline would run on that.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
from pathlib import Path
from typing import IO

from aiokafka.errors import KafkaError

from core.errors import BrokerUnreachable
from core.settings import Settings
from kafka_io.topic_admin import missing_or_mismatched

_held_locks: list[IO[str]] = []  # kept open for the life of the process


class StartRefused(Exception):
    """A reason the worker must not start, in one line."""


def member_id(settings: Settings, web_port: int) -> str | None:
    """Static membership id: configured, else `<app id>-<host>-<web port the worker listens on>`."""
    if not settings.kafka.static_membership:
        return None
    if settings.kafka.group_instance_id:
        return settings.kafka.group_instance_id
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{settings.worker.app_id}-{host}-{web_port}"


def _lock(path: Path, what: str, hint: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StartRefused(f"{what} is already used by {holder} on this host; {hint}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"worker pid {os.getpid()}")
    handle.flush()
    _held_locks.append(handle)


def claim(settings: Settings, member: str | None, lock_dir: Path | None = None) -> None:
    """Hold this host's locks on the member id and the data directory, or raise StartRefused."""
    if member is not None:  # ids are unique per group: the lock is named by brokers, group and id
        members = lock_dir or Path(tempfile.gettempdir()) / "logweave-members"
        scope = hashlib.sha256(f"{settings.kafka.brokers}|{settings.worker.app_id}|{member}".encode()).hexdigest()[:24]
        _lock(members / f"{scope}.lock", f"group member id {member!r}",
              "give each worker its own --web-port or LOGWEAVE_KAFKA__GROUP_INSTANCE_ID")
    data_dir = settings.worker.data_dir
    _lock(data_dir / "worker.lock", f"data directory {str(data_dir)!r}",
          "give each worker its own LOGWEAVE_WORKER__DATA_DIR")


async def check_topics(settings: Settings, timeout: float = 30.0) -> None:
    try:
        problem = await missing_or_mismatched(settings, timeout)
    except BrokerUnreachable as exc:  # already one line naming the brokers and the setting
        raise StartRefused(str(exc)) from None
    except KafkaError as exc:
        raise StartRefused(f"Kafka at {settings.kafka.brokers} did not answer within {timeout:.0f}s ({exc}); "
                           "check kafka.brokers (LOGWEAVE_KAFKA__BROKERS) and that the brokers are up") from None
    if problem is not None:
        raise StartRefused(problem)
