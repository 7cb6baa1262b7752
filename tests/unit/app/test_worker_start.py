"""Start-up checks without a broker: the member id follows the web port in use, and a member id or
data directory already held on this host is refused in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.worker_start import StartRefused, _held_locks, check_topics, claim, member_id
from core.settings import Settings
from kafka_io.topic_admin import worker_topics


@pytest.fixture(autouse=True)
def release_locks() -> Iterator[None]:
    yield
    while _held_locks:
        _held_locks.pop().close()


def test_the_member_id_comes_from_the_port_in_use_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "node-1")
    settings = Settings(worker={"web_port": 6066})
    assert member_id(settings, 6067) == "logweave-node-1-6067"
    assert member_id(Settings(kafka={"group_instance_id": "pod-0"}), 6067) == "pod-0"
    assert member_id(Settings(kafka={"static_membership": False}), 6067) is None


def test_a_second_claim_on_an_id_or_a_data_dir_is_refused(tmp_path: Path) -> None:
    first = Settings(worker={"data_dir": str(tmp_path / "a")})
    claim(first, "m-1", lock_dir=tmp_path / "members")
    with pytest.raises(StartRefused, match=r"group member id 'm-1' is already used by worker pid \d+"):
        claim(Settings(worker={"data_dir": str(tmp_path / "b")}), "m-1", lock_dir=tmp_path / "members")
    with pytest.raises(StartRefused, match="LOGWEAVE_WORKER__DATA_DIR"):
        claim(first, "m-2", lock_dir=tmp_path / "members")
    claim(Settings(worker={"data_dir": str(tmp_path / "c")}), "m-3", lock_dir=tmp_path / "members")


def test_prepare_covers_the_trace_changelog_with_a_delete_policy() -> None:
    settings = Settings(kafka={"topic_prefix": "x."}, sinks={"enabled": ["file", "etcd"]},
                        traces={"changelog_retention": "2h"})
    wanted = worker_topics(settings)
    assert {"x.logs.raw", "x.logs.parsed", "x.sink.file", "x.sink.etcd", "x.traces.closed"} <= set(wanted)
    assert wanted["logweave-traces-changelog"] == {"cleanup.policy": "delete", "retention.ms": "7200000",
                                                   "segment.ms": "1800000",  # else no segment closes to delete
                                                   "retention.bytes": "-1"}  # never a byte bound on table state


async def test_an_unreachable_broker_is_one_line_naming_it() -> None:
    from commands.broker import free_port

    settings = Settings(kafka={"brokers": f"127.0.0.1:{free_port()}"})
    with pytest.raises(StartRefused, match=r"Kafka at 127\.0\.0\.1:\d+ did not answer within 1s"):
        await check_topics(settings, timeout=1.0)
